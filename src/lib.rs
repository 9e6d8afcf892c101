//! sloproof turns A/B-experiment evidence into Service Level Objectives justified by business
//! impact. Dependencies point one way: `api` → `ingest` (and later `analysis`, `slo`) → `stats`,
//! and everything that needs data → `store`.

pub mod analysis;
pub mod api;
pub mod bench;
pub mod config;
pub mod domain;
pub mod error;
pub mod ingest;
pub mod server;
pub mod simulate;
pub mod slo;
pub mod stats;
pub mod store;
