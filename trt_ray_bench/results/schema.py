"""Arrow schemas of the four tables, declared once. Every writer and reader uses these."""

from __future__ import annotations

import pyarrow as pa

#: The version of the results format this code writes. A run folder records it twice: in
#: ``format.json`` (``{"format": 2, ...}``) and in every table's Parquet schema metadata
#: (``FORMAT_KEY``). ``results.load`` reads every version from ``FIRST_FORMAT`` to this one
#: and refuses a newer one (written by a newer trt_ray_bench) in one line.
#:
#: 1: trees written before the version was recorded (no marker; e.g. tests/data/h100).
#: 2: the marker. Columns are added to a version without a new number: a reader takes a
#:    tree that lacks the newer columns. A new number means an older reader would
#:    misread the tree (a column renamed, its meaning or unit changed, a table split).
FORMAT_VERSION = 2
FIRST_FORMAT = 1
#: the key of the version in each Parquet file's schema metadata (the value: b"2")
FORMAT_KEY = b"trt_ray_bench.format"
#: the run folder's record of its version
FORMAT_FILE = "format.json"

#: ``fps`` is latency-bound (batch x 1000 / mean latency); ``*_ci_lo_ms``/``*_ci_hi_ms`` are the
#: intervals of the median and the mean at the row's ``confidence`` (``timing._stats``)
STAT_FIELDS = ["n", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "fps", "cv",
               "p50_ci_lo_ms", "p50_ci_hi_ms", "mean_ci_lo_ms", "mean_ci_hi_ms",
               # how dependent consecutive inferences are: the effective sample sizes of the
               # median's and the mean's intervals, the lag-1 autocorrelation, and the spread of
               # consecutive tenths' medians over that of shuffled ones (timing._stats)
               "n_eff", "n_eff_mean", "acf1", "block_ratio"]

#: the pipeline's stages, in the order an image goes through them: runs columns
#: ``<stage>_p50_ms``, samples columns ``<stage>_ms``
STAGES = ("load", "pre", "infer", "post", "metrics")

PROVENANCE_FIELDS = [
    ("host", pa.string()), ("node_id", pa.string()), ("platform", pa.string()), ("board", pa.string()),
    ("gpu_name", pa.string()), ("gpu_driver", pa.string()),
    # CUDA: the driver's CUDA version (NVML) on a desktop GPU, JetPack's CUDA on a Jetson
    ("cuda_version", pa.string()),
    # Jetson: Jetson Linux release, JetPack, the power mode the run measured under
    # (``MAXN (0)``) and the GPU's devfreq min-max in MHz during the run (``306-1300.5``)
    ("l4t", pa.string()), ("jetpack", pa.string()), ("power_mode", pa.string()), ("gpu_freq_range_mhz", pa.string()),
    ("os", pa.string()), ("machine", pa.string()), ("cpu_model", pa.string()), ("cpu_count", pa.int32()),
    ("python_version", pa.string()), ("trb_version", pa.string()), ("ray_version", pa.string()),
    ("onnxruntime_version", pa.string()), ("numpy_version", pa.string()), ("ultralytics_version", pa.string()),
    ("tensorrt_version", pa.string()), ("torch_version", pa.string()),
]

#: The node's controls during the run (``trt_ray_bench.control``): the clock mode asked
#: for, the clock state (JSON) read before it was applied, right after, and after it was
#: restored; MPS asked for and found: ``off``, ``started`` or ``running (not ours)``; on a
#: Jetson with ``power_mode``, nvpmodel's mode (JSON ``{"id": 0, "name": "MAXN"}``) before
#: and after the run (the mode in force is the ``power_mode`` column).
MACHINE_CONTROL_FIELDS = [
    ("clocks_mode", pa.string()), ("clocks_before", pa.string()), ("clocks_in_force", pa.string()),
    ("clocks_after", pa.string()), ("mps", pa.bool_()), ("mps_state", pa.string()),
    ("power_mode_before", pa.string()), ("power_mode_after", pa.string()),
]


#: Sweeps (``trb sweep``), null outside one: the sweep's name, the point's identity (a
#: hash of its resolved spec and the node selector), its axis values as one JSON object
#: (``{"timing.gap_s": 0.05}``; ``trt_ray_bench.cluster.sweep.point_columns`` spreads it
#: into ``axis:<field>`` columns), the node it ran on and its board kind, the attempt (1 = first), and the
#: point's start and end on that node.
SWEEP_FIELDS = [
    ("sweep", pa.string()), ("point_id", pa.string()), ("point", pa.string()), ("node_name", pa.string()),
    ("node_board", pa.string()),
    ("attempt", pa.int32()), ("point_started_at", pa.timestamp("us", tz="UTC")),
    ("point_ended_at", pa.timestamp("us", tz="UTC")),
]


#: ``results.diagnose`` per row: what a careful engineer would warn about, as values
#: (``code``: cv, drift, few_samples, warmup_short, clock_changed, throttle, start_skew,
#: short_window, repeat_spread, cooldown_timeout, ...; ``message``: one sentence). Their messages are also in ``warnings``.
DIAGNOSTICS = pa.list_(pa.struct([("code", pa.string()), ("message", pa.string())]))


def _stats(prefix: str):
    return [(prefix + f, pa.int64() if f == "n" else pa.float64()) for f in STAT_FIELDS]


RUNS = pa.schema(
    [
        ("run_id", pa.string()), ("experiment", pa.string()), ("model", pa.string()), ("phase", pa.string()),
        ("repeat", pa.int32()), ("mode", pa.string()), ("status", pa.string()), ("error", pa.string()),
        ("task", pa.string()), ("backend", pa.string()), ("device", pa.string()), ("providers", pa.string()),
        ("source", pa.string()), ("onnx_path", pa.string()), ("onnx_sha256", pa.string()), ("weights", pa.string()),
        ("imgsz_h", pa.int32()), ("imgsz_w", pa.int32()), ("batch", pa.int32()),
        ("input_kind", pa.string()), ("n_inputs", pa.int32()),
        ("precision", pa.string()), ("engine_path", pa.string()), ("gpu", pa.string()),
        # the GPU the experiment leased (nvidia-smi's index, its UUID; null on a node without
        # GPUs, the UUID also on a Jetson) and the CUDA_VISIBLE_DEVICES its model process saw
        ("gpu_index", pa.int32()), ("gpu_uuid", pa.string()), ("cuda_visible_devices", pa.string()),
        # precision by model conversion: the converter and its settings in words, the
        # converted file's and the calibration set's hashes; tensorrt: weak | strong typing
        ("typing", pa.string()), ("converter", pa.string()), ("converted_sha256", pa.string()),
        ("calib_sha256", pa.string()),
        ("transfers", pa.bool_()), ("cuda_graph", pa.bool_()),
        # TensorRT on a DLA (options.dla_core; null: the GPU), and the engine's layers that
        # fell back to the GPU (options.gpu_fallback), by name
        ("dla_core", pa.int32()), ("dla_gpu_layers", pa.list_(pa.string())),
        ("sync", pa.string()), ("gap_s", pa.float64()), ("warmup_n", pa.int64()),
        # how the gap was waited out (sleep | spin), what ran untimed just
        # before each timed inference (none | poke | dummy), repeats in one actor or a fresh one
        # each (actor | process), and the process id of the model's actor for this row
        ("gap_mode", pa.string()), ("prewarm", pa.string()), ("repeat_isolation", pa.string()),
        ("actor_pid", pa.int64()),
        # together: whether the models kept running untimed inferences while waiting at the
        # barrier (timing.keep_warm), and how many they ran there (warm-up rows)
        ("keep_warm", pa.bool_()), ("barrier_warmup_n", pa.int64()),
        ("iterations", pa.int64()), ("duration_s", pa.float64()), ("n_models", pa.int32()),
        # the timing variant (spec ``variants``; null without), the warm-up asked for (count,
        # seconds), together's fill, the order of the repeats (interleaved | grouped)
        ("variant", pa.string()), ("warmup", pa.int64()), ("warmup_s", pa.float64()), ("fill", pa.bool_()),
        ("repeat_order", pa.string()),
        # the model's backend options (canonical JSON) and the ones that move latency most
        ("options", pa.string()), ("threads", pa.int32()), ("opt_level", pa.int32()),
        # the resolved spec less its name, description, output, confidence and repeats
        # (canonical JSON): runs that differ there are different conditions
        ("settings", pa.string()),
        ("window_start_ns", pa.int64()), ("window_end_ns", pa.int64()), ("window_s", pa.float64()),
        ("start_skew_us", pa.float64()), ("start_instant_ns", pa.int64()), ("start_late_us", pa.float64()), ("n_total", pa.int64()), ("timer", pa.string()),
        *_stats(""), *_stats("gpu_"), ("enqueue_mean_ms", pa.float64()),
        # the level of the row's intervals; achieved images/s over its measured span (gaps, sync, fill in)
        ("confidence", pa.float64()), ("throughput_ips", pa.float64()),
        # sync: none: how long the one synchronisation after the measured phase waited (null otherwise)
        ("sync_wait_ms", pa.float64()),
        # how frames arrive (timing.arrivals: closed | periodic | poisson), their rate per second,
        # the periodic clock's jitter (ms), the arrival clock's seed (drawn and kept where the spec
        # gave none; null for a closed loop) and the backlog policy (queue | drop; null when closed)
        ("arrivals", pa.string()), ("rate_hz", pa.float64()), ("jitter_ms", pa.float64()), ("seed", pa.int64()),
        # open loop: what became of a frame that arrived while the model was busy: queue (served in turn,
        # late) or drop (skipped where a newer frame had arrived when the model was free)
        ("backlog", pa.string()),
        # each frame's result is due this long after its arrival (closed: after its start; null: no deadline)
        ("deadline_ms", pa.float64()),
        # open loop: latency from each frame's arrival to its end (what the frame saw: its wait in the
        # queue and its service), over the row's in-window inferences: mean, median, tail percentiles
        # (NaN below the counts of p90_ms..p99_ms), slowest; p50_ms..max_ms are the service time (from start)
        ("mean_from_arrival_ms", pa.float64()), ("p50_from_arrival_ms", pa.float64()),
        # open loop: the 90th and 95th percentiles from arrival (NaN below 36 and 72 inferences)
        ("p90_from_arrival_ms", pa.float64()), ("p95_from_arrival_ms", pa.float64()),
        # open loop: the 99th percentile from arrival (NaN below 368 inferences) and the slowest
        ("p99_from_arrival_ms", pa.float64()), ("max_from_arrival_ms", pa.float64()),
        # the intervals of the from-arrival median and mean (as p50_ci_lo_ms .. mean_ci_hi_ms)
        ("p50_from_arrival_ci_lo_ms", pa.float64()), ("p50_from_arrival_ci_hi_ms", pa.float64()),
        # the interval of the from-arrival mean (NaN where the row is too short for its dependence)
        ("mean_from_arrival_ci_lo_ms", pa.float64()), ("mean_from_arrival_ci_hi_ms", pa.float64()),
        # open loop: the wait from arrival to start (queueing), mean and longest
        ("queue_mean_ms", pa.float64()), ("queue_max_ms", pa.float64()),
        # open loop: frames that arrived in the row (alone: the measured phase; together: from its first
        # to its last in-window frame) and those of them never served (backlog drop skipped them, or
        # still waiting when duration_s ended)
        ("frames", pa.int64()), ("dropped", pa.int64()),
        # with deadline_ms: the share of frames whose result came later than the deadline after their
        # arrival, or never (dropped); its interval at the row's confidence on the effective sample
        # size of the miss series (misses come in bursts); NaN where too short for its dependence
        ("deadline_miss", pa.float64()), ("deadline_miss_lo", pa.float64()), ("deadline_miss_hi", pa.float64()),
        # open loop: the harness's scheduling error, start minus scheduled arrival of the frames that
        # found the model idle: how many, median, 99th percentile (NaN below 368), largest
        ("sched_error_n", pa.int64()), ("sched_error_p50_ms", pa.float64()), ("sched_error_p99_ms", pa.float64()),
        # open loop: the largest scheduling error of a frame that found the model idle
        ("sched_error_max_ms", pa.float64()),
        ("h2d_p50_ms", pa.float64()), ("compute_p50_ms", pa.float64()), ("d2h_p50_ms", pa.float64()),
        ("load_p50_ms", pa.float64()), ("pre_p50_ms", pa.float64()), ("infer_p50_ms", pa.float64()),
        ("post_p50_ms", pa.float64()), ("metrics_p50_ms", pa.float64()), ("n_images", pa.int64()),
        ("n_labels", pa.int64()), ("data", pa.string()),
        *[(k, pa.float64()) for k in ("top1", "top5", "map50", "map50_95", "box_map50", "box_map50_95",
                                       "mask_map50", "mask_map50_95", "pose_map50", "pose_map50_95")],
        # energy of the row's measured window in joules (results.energy; together: the whole
        # window's, every model's); null where there is none (energy_why says why)
        ("energy_j", pa.float64()),
        # the GPU's own energy in the window: a Jetson's GPU rail (energy_gpu_source); on NVML,
        # which measures the GPU only, the same as energy_j
        ("energy_gpu_j", pa.float64()),
        # millijoules per inference and inferences per joule (together: the window's energy over
        # the inferences of every model in it)
        ("energy_mj_per_inf", pa.float64()), ("inf_per_j", pa.float64()),
        # the window's mean power: energy_j over its length
        ("avg_power_w", pa.float64()),
        # where energy_j came from: nvml_counter (NVML's total-energy counter at the window's
        # edges), nvml_power_integral (NVML's power over the window), tegrastats:<RAIL> (a
        # Jetson's module input rail) or tegrastats:sum(<RAIL>+...) (every rail, on boards
        # without one)
        ("energy_source", pa.string()),
        # where energy_gpu_j came from (tegrastats:<GPU rail>, or NVML's source)
        ("energy_gpu_source", pa.string()),
        # why the energy columns are empty (no power reading, a window too short for NVML's 1-s
        # power average, a CPU model with only the GPU's power), or how a together window's
        # energy is shared
        ("energy_why", pa.string()),
        # the same source's mean power over the idle measurement before the run
        # (telemetry.idle_s; null without)
        ("idle_power_w", pa.float64()),
        # energy_j less idle_power_w over the window: what the work itself cost
        ("energy_above_idle_j", pa.float64()),
        # timing.cooldown: how long the phase waited for the node to cool (null without a cooldown)
        ("cooldown_s", pa.float64()),
        # the temperature (°C; the GPU's, else the hottest thermal zone's) when the phase began
        ("cooldown_temp_c", pa.float64()),
        # over-current events the board counted during the row's phase, warm-up included (Orin
        # and Thor: oc1 under-voltage, oc2 average and oc3 instantaneous over-current, each
        # cutting the clocks for a moment); null where the board has no such counters
        ("oc_events", pa.int64()),
        # which counters moved, and by how much (oc3 (instantaneous over-current) +37)
        ("oc_events_detail", pa.string()),
        # which of the row's samples samples.parquet keeps (the spec's ``timing.samples``): all
        # (every inference, warm-up included), window (the in-window ones its statistics use)
        # or none (only this row's statistics and its per-second aggregates)
        ("samples_kept", pa.string()),
        ("warnings", pa.list_(pa.string())), ("diagnostics", DIAGNOSTICS),
        ("started_at", pa.timestamp("us", tz="UTC")),
        *PROVENANCE_FIELDS, ("spec_sha256", pa.string()), *MACHINE_CONTROL_FIELDS, *SWEEP_FIELDS,
    ]
)

SAMPLES = pa.schema(
    [
        ("run_id", pa.string()), ("model", pa.string()), ("phase", pa.string()), ("repeat", pa.int32()),
        ("mode", pa.string()), ("variant", pa.string()), ("iteration", pa.int64()), ("warmup", pa.bool_()), ("in_window", pa.bool_()),
        ("t_start_ns", pa.int64()), ("t_end_ns", pa.int64()),
        ("host_ms", pa.float64()), ("enqueue_ms", pa.float64()), ("gpu_ms", pa.float64()),
        ("h2d_ms", pa.float64()), ("compute_ms", pa.float64()), ("d2h_ms", pa.float64()),
        ("load_ms", pa.float64()), ("pre_ms", pa.float64()), ("infer_ms", pa.float64()), ("post_ms", pa.float64()),
        ("metrics_ms", pa.float64()),
        # open loop: the frame's scheduled arrival (node monotonic clock), and its wait from then to
        # t_start_ns (null in a closed loop)
        ("t_arrival_ns", pa.int64()), ("queue_ms", pa.float64()),
    ]
)

TELEMETRY = pa.schema(
    [
        ("run_id", pa.string()), ("t_ns", pa.int64()), ("source", pa.string()), ("metric", pa.string()),
        ("value", pa.float64()), ("unit", pa.string()),
        # the period the reading averages, ending at ``t_ns`` (NVML power ~1 s on Ampere and
        # newer, utilisation over its sample period, tegrastats' loads over its interval); 0
        # for an instantaneous reading. Joined to inferences, a reading is placed at its
        # midpoint ``t_ns - avg_s / 2`` (``results.join.placed_t_ns``); averaged over a window,
        # it weighs by the share of its period inside it (``results.explain.window_mean``).
        ("avg_s", pa.float64()),
    ]
)

# Per runs row and per second of its measured inferences (``results.aggregates.BIN_S``;
# a row shorter than a second gets one bin), kept whatever ``timing.samples`` keeps, so a
# long run's drift and throttling stay visible without its samples. Each value is of the
# inferences that started in the bin: a real percentile of them, never an average of
# other percentiles. Join the telemetry by time (``t_ns``, the same clock).
AGGREGATES = pa.schema(
    [
        ("run_id", pa.string()), ("model", pa.string()), ("phase", pa.string()), ("repeat", pa.int32()),
        ("mode", pa.string()), ("variant", pa.string()),
        # the bin's start (node monotonic clock): the row's window start plus a whole number of
        # seconds; its inferences are those that started in [t_ns, t_ns + 1 s)
        ("t_ns", pa.int64()),
        # whether the bin's inferences are in the row's window (those its statistics use); the
        # measured inferences outside it (together: before the last model began, or the fill
        # after the first stopped) are a bin of their own beside it, with the same t_ns
        ("in_window", pa.bool_()),
        # measured inferences in the bin, and the median and the slowest of their host latency
        ("n", pa.int64()), ("host_p50_ms", pa.float64()), ("host_max_ms", pa.float64()),
        # the median and the slowest of their GPU time (CUDA events); null without a GPU timer
        ("gpu_p50_ms", pa.float64()), ("gpu_max_ms", pa.float64()),
    ]
)

TABLES = {"runs": RUNS, "samples": SAMPLES, "telemetry": TELEMETRY, "aggregates": AGGREGATES}
