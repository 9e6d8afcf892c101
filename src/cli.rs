//! The command line: subcommands and their arguments.

use clap::{Parser, Subcommand};

/// sloproof: evidence-based SLOs from A/B experiments.
#[derive(Debug, Parser)]
#[command(name = "sloproof", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: crate::config::Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the HTTP server (the default).
    Serve,
    /// Print the OpenAPI document as JSON.
    Openapi,
    /// Generate a simulated latency-injection experiment and load it through the API.
    Simulate {
        /// Base URL of a running sloproof.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// An analyst or admin API token.
        #[arg(long, env = "SLOPROOF_TOKEN", hide_env_values = true)]
        token: String,
        #[command(flatten)]
        config: crate::simulate::SimConfig,
    },
    /// Print a simulated production series of a latency SLI (histogram windows): NDJSON rows
    /// for `POST /api/v1/metrics/{key}/series`, or OpenMetrics for
    /// `promtool tsdb create-blocks-from openmetrics`.
    SimulateSeries {
        #[arg(long, value_enum, default_value_t = SeriesFormat::Ndjson)]
        format: SeriesFormat,
        /// Histogram name in OpenMetrics output (bounds written in seconds).
        #[arg(long, default_value = "checkout_latency_seconds")]
        name: String,
        /// Finite bucket bounds in ms, increasing (default: 16 bounds from 25 ms to 5 s).
        #[arg(long, value_delimiter = ',')]
        bounds: Option<Vec<f64>>,
        #[command(flatten)]
        config: crate::simulate_series::SeriesConfig,
    },
    /// Ask the deploy gate of a running sloproof whether a change may ship now; exits 0
    /// (allow), 1 (deny), 2 (needs approval) or 3 (the check could not be made).
    Gate {
        /// Base URL of a running sloproof.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// Any API token; the check is recorded with its name.
        #[arg(long, env = "SLOPROOF_TOKEN", hide_env_values = true)]
        token: String,
        /// Id of an SLO the change touches (repeat for several).
        #[arg(long = "slo", required_unless_present = "journey")]
        slos: Vec<i64>,
        /// A journey's key: the change touches each of its steps (instead of --slo).
        #[arg(long, conflicts_with = "slos")]
        journey: Option<String>,
        /// low, normal, high or critical.
        #[arg(long, default_value = "normal")]
        priority: String,
        /// What ships.
        #[arg(long)]
        description: String,
        /// Share of each SLO's remaining error budget the change may spend.
        #[arg(long)]
        expected_budget_burn: Option<f64>,
    },
    /// Time the statistics core on a simulated experiment and print JSON (a benchmark).
    BenchStats {
        #[arg(long, default_value_t = 1_000_000)]
        units: usize,
        #[arg(long, default_value_t = 2000)]
        resamples: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// Output of `simulate-series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeriesFormat {
    Ndjson,
    Openmetrics,
}
