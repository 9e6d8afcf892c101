//! SLO recommendations, error budgets and exports (OpenSLO, Prometheus rules).

pub mod business;
pub mod calendars;
pub mod correlational;
pub mod early_warning;
pub mod early_warnings;
pub(crate) mod events;
pub mod gate;
pub mod journey;
pub mod journey_export;
pub mod journeys;
pub mod live;
pub mod model;
pub mod noise;
pub mod openslo;
pub mod prometheus;
pub mod recommend;
pub mod request;
pub mod revalidate;
pub mod service;
pub mod threshold;
pub mod trace;
pub mod traces;
