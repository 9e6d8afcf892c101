//! sloproof turns A/B-experiment evidence into Service Level Objectives justified by business
//! impact.
//!
//! Dependencies point one way: `api` → `analysis`, `slo`, `ingest`, `access` → `stats`,
//! `domain`. Only `store` and the `service` seams of those modules touch the database;
//! `server` is the composition root that opens it. See docs/architecture.md.

pub mod access;
pub mod analysis;
pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod gate_client;
pub mod ingest;
pub mod server;
pub mod simulate;
pub mod simulate_series;
pub mod slo;
pub mod stats;
pub mod store;
