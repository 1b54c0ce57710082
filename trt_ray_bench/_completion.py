"""``trb completion bash|zsh``: a completion script written from the parser itself, so it
names every subcommand, option and choice ``trb`` has, and cannot drift from it.

Hand-written, not argcomplete (which runs Python at every <Tab> and must be installed
and registered) nor shtab (one more dependency for a few dozen lines): the script is
plain bash; zsh runs it through its ``bashcompinit``. Paths are completed by the
shell's own file completion (``complete -o default``)."""

from __future__ import annotations

import argparse
from typing import Dict, List, Tuple


def _tree(parser: argparse.ArgumentParser, path: str, out: Dict[str, Tuple[List[str], List[str], Dict[str, List[str]]]]):
    """``path`` ("" for trb, "models make", ...) -> (subcommands, options, choices per option)."""
    subs: List[str] = []
    opts: List[str] = []
    choices: Dict[str, List[str]] = {}
    for action in parser._actions:  # noqa: SLF001 - argparse keeps them there
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, child in action.choices.items():
                subs.append(name)
                _tree(child, f"{path} {name}".strip(), out)
            continue
        for opt in action.option_strings:
            opts.append(opt)
            if action.choices:
                choices[opt] = [str(c) for c in action.choices]
    out[path] = (subs, opts, choices)


def _case(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def bash_script(parser: argparse.ArgumentParser) -> str:
    tree: Dict[str, Tuple[List[str], List[str], Dict[str, List[str]]]] = {}
    _tree(parser, "", tree)
    prog = parser.prog
    fn = f"_{prog}_complete".replace("-", "_")
    steps, words, values = [], [], []
    for path, (subs, opts, choices) in sorted(tree.items()):
        for s in subs:
            steps.append(f"            {_case(f'{path}:{s}')}) path={_case(f'{path} {s}'.strip())} ;;")
        words.append(f"        {_case(path)}) subs={_case(' '.join(subs))}; opts={_case(' '.join(opts))} ;;")
        for opt, vals in choices.items():
            values.append(f"        {_case(f'{path}:{opt}')}) COMPREPLY=($(compgen -W {_case(' '.join(vals))} -- \"$cur\"));"
                          " return ;;")
    nl = "\n"
    return f"""# {prog} completion for bash (zsh: the same through bashcompinit). Written by `{prog} completion bash`.
{fn}() {{
    local cur prev path="" w i subs="" opts=""
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        case "$path:$w" in
{nl.join(steps)}
        esac
    done
    case "$path:$prev" in
{nl.join(values)}
    esac
    case "$path" in
{nl.join(words)}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [[ -n "$subs" ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    fi  # nothing: file names, the shell's own completion (-o default)
}}
complete -o default -F {fn} {prog}
"""


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    text = bash_script(parser)
    if shell == "zsh":
        return ("# trb completion for zsh, through bashcompinit. Written by `trb completion zsh`.\n"
                "autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n" + text)
    return text
