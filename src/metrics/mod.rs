//! RED metrics computed from spans, plus the agent's own counters.
//!
//! - `active`: `http.server.active_requests`, counted on the request thread (two atomic ops).
//! - `red`: the export thread's aggregator over finished spans, keyed on their family: HTTP
//!   server spans (duration histogram with the semantic-convention buckets, slow and error
//!   counters), HTTP client spans (duration) and database spans (`db.client.operation.duration`).
//! - `cells`: `http.server.request.duration` counted on the request thread for head-dropped
//!   requests that leave no record (neither errors nor slow), drained into `red` at each snapshot.
//! - `snapshot`: one process's cumulative values, the unit that is merged and exported.
//! - `prometheus`: text exposition, and the multi-process scrape endpoint (see there).

pub mod active;
pub mod cells;
pub mod prometheus;
pub mod red;
pub mod snapshot;

/// `db.client.operation.duration` bucket bounds (seconds), from the semantic conventions.
pub const DB_DURATION_BOUNDS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// `http.server.request.duration` bucket bounds (seconds), from the semantic conventions.
pub const DURATION_BOUNDS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
