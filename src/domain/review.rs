//! The review workflow of recommendations and the life of published SLOs.

use super::text_enum;

text_enum! {
    /// Review state of a recommendation.
    RecommendationStatus { Proposed => "proposed", Approved => "approved", Rejected => "rejected" }
}

text_enum! {
    /// Whether a published SLO is the current one for its SLI and KPI.
    SloStatus { Active => "active", Superseded => "superseded" }
}

text_enum! {
    /// A review decision.
    Decision { Approve => "approve", Reject => "reject" }
}

text_enum! {
    /// A recorded transition.
    Action { Proposed => "proposed", Approved => "approved", Rejected => "rejected", Published => "published", Superseded => "superseded" }
}
