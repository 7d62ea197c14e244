//! Prometheus metrics for `GET /metrics`: requests and errors per endpoint
//! and status, latency histograms per endpoint and per stage of the
//! pipeline, batch sizes, queue depth, the encoder cache, and the
//! process's resident memory (read from /proc at each scrape, so a load
//! test can watch it through the same endpoint).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Latency buckets in seconds, 0.25 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub errors: IntCounterVec,
    pub latency: HistogramVec,
    pub stages: HistogramVec,
    pub batch_size: Histogram,
    pub queue_depth: IntGauge,
    /// Jobs admitted and not yet taken into a batch: in the queue, or in
    /// the engine's look-ahead window. Admission raises it only below
    /// `limits.queue_capacity` (one atomic step, so concurrent requests
    /// cannot all pass one check); the engine lowers it as it takes or
    /// drops jobs.
    pub waiting: std::sync::atomic::AtomicUsize,
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    /// Sentence embeddings the cache holds (at most `limits.cache_entries`).
    pub cache_entries: IntGauge,
    /// Drift of the rows `/v1/classify` has seen against the training rows.
    pub drift: prometheus::GaugeVec,
    pub drift_rows: IntGauge,
    rss: IntGauge,
}

impl Metrics {
    /// Counters at zero.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "recur_requests_total",
                "HTTP requests by endpoint and status",
            ),
            &["endpoint", "status"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "recur_errors_total",
                "Requests answered with an error, by endpoint and error code",
            ),
            &["endpoint", "code"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "recur_request_duration_seconds",
                "Time from request to response, by endpoint",
            )
            .buckets(BUCKETS.to_vec()),
            &["endpoint"],
        )
        .expect("valid metric");
        let stages = HistogramVec::new(
            HistogramOpts::new(
                "recur_stage_duration_seconds",
                "Time of each pipeline stage: queue (per request, from its arrival to its batch's start), and per batch encoding, context_build, lvm_inference, decoding, classify",
            )
            .buckets(BUCKETS.to_vec()),
            &["stage"],
        )
        .expect("valid metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "recur_batch_size",
                "Requests run through the models together",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
        )
        .expect("valid metric");
        let queue_depth =
            IntGauge::new("recur_queue_depth", "Requests waiting for the models").expect("valid");
        let cache_hits = IntCounter::new(
            "recur_encoder_cache_hits_total",
            "Sentences whose embedding was reused",
        )
        .expect("valid");
        let cache_misses = IntCounter::new(
            "recur_encoder_cache_misses_total",
            "Sentences run through the encoder",
        )
        .expect("valid");
        let cache_entries = IntGauge::new(
            "recur_encoder_cache_entries",
            "Sentence embeddings the cache holds (at most limits.cache_entries)",
        )
        .expect("valid");
        let drift = prometheus::GaugeVec::new(
            Opts::new(
                "recur_drift",
                "Drift of the feature rows /v1/classify has seen (the latest 5,000, each once, smoothed as the model reads them) against the classifier's training rows; drifted is 1 when a statistic is over its threshold",
            ),
            &["feature", "statistic"],
        )
        .expect("valid metric");
        let drift_rows = IntGauge::new(
            "recur_drift_rows",
            "Feature rows of /v1/classify requests the drift figures cover",
        )
        .expect("valid");
        let rss = IntGauge::new(
            "process_resident_memory_bytes",
            "Resident memory of the server process",
        )
        .expect("valid");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(latency.clone()),
            Box::new(stages.clone()),
            Box::new(batch_size.clone()),
            Box::new(queue_depth.clone()),
            Box::new(cache_hits.clone()),
            Box::new(cache_misses.clone()),
            Box::new(cache_entries.clone()),
            Box::new(drift.clone()),
            Box::new(drift_rows.clone()),
            Box::new(rss.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            errors,
            latency,
            stages,
            batch_size,
            queue_depth,
            waiting: Default::default(),
            cache_hits,
            cache_misses,
            cache_entries,
            drift,
            drift_rows,
            rss,
        }
    }

    /// Sets the drift gauges from a drift table.
    pub fn set_drift(&self, table: &[recur_data::drift::FeatureDrift]) {
        for d in table {
            let f = d.feature.as_str();
            for (stat, v) in [
                ("psi", Some(d.psi)),
                ("ks", Some(d.ks)),
                ("mean_shift", Some(d.mean_shift)),
                ("autocorr_shift", Some(d.autocorr_shift)),
                ("noise_ratio_shift", d.noise_ratio_shift),
                ("drifted", Some(if d.drift { 1.0 } else { 0.0 })),
            ] {
                if let Some(v) = v {
                    self.drift.with_label_values(&[f, stat]).set(v);
                }
            }
        }
    }

    /// Records one stage's time in milliseconds.
    pub fn stage(&self, stage: &str, ms: f64) {
        self.stages.with_label_values(&[stage]).observe(ms / 1000.0);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        if let Some(rss) = resident_bytes() {
            self.rss.set(rss as i64);
        }
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding of gathered metrics");
        String::from_utf8(buf).expect("Prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Resident set size of this process (Linux; `None` elsewhere).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
