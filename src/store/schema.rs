//! Diesel table definitions shared by the SQLite and PostgreSQL backends.
//!
//! The SQL in `migrations/sqlite` and `migrations/postgres` must produce tables that match these
//! definitions; only types both backends support are used.

diesel::table! {
    metrics (id) {
        id -> BigInt,
        key -> Text,
        name -> Text,
        description -> Nullable<Text>,
        kind -> Text,
        value_type -> Text,
        unit -> Text,
        direction -> Text,
        layer -> Text,
        created_at -> Timestamp,
        prometheus_good_events -> Nullable<Text>,
        prometheus_total_events -> Nullable<Text>,
        prometheus_buckets -> Nullable<Text>,
        prometheus_source -> Nullable<Text>,
        ratio_of -> Nullable<Text>,
        ordinal_scale -> Nullable<Text>,
    }
}

diesel::table! {
    metric_parents (metric_id, parent_id) {
        metric_id -> BigInt,
        parent_id -> BigInt,
        position -> Integer,
    }
}

diesel::table! {
    experiments (id) {
        id -> BigInt,
        key -> Text,
        name -> Text,
        hypothesis -> Text,
        journey -> Nullable<Text>,
        sli_metric_id -> BigInt,
        created_at -> Timestamp,
        data_version -> BigInt,
    }
}

diesel::table! {
    experiment_metrics (experiment_id, metric_id) {
        experiment_id -> BigInt,
        metric_id -> BigInt,
        role -> Text,
        position -> Integer,
    }
}

diesel::table! {
    variants (id) {
        id -> BigInt,
        experiment_id -> BigInt,
        key -> Text,
        weight -> Double,
        is_control -> Bool,
        dose -> Double,
        position -> Integer,
    }
}

diesel::table! {
    experiment_slis (experiment_id, metric_id) {
        experiment_id -> BigInt,
        metric_id -> BigInt,
        position -> Integer,
    }
}

diesel::table! {
    variant_doses (variant_id, metric_id) {
        variant_id -> BigInt,
        metric_id -> BigInt,
        dose -> Double,
    }
}

diesel::table! {
    assignments (experiment_id, unit_id) {
        experiment_id -> BigInt,
        unit_id -> BigInt,
        variant_id -> BigInt,
        assigned_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    observations (experiment_id, unit_id, metric_id, period) {
        experiment_id -> BigInt,
        unit_id -> BigInt,
        metric_id -> BigInt,
        period -> Text,
        value -> Double,
        observed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    units (experiment_id, id) {
        experiment_id -> BigInt,
        id -> BigInt,
        key -> Text,
    }
}

diesel::joinable!(experiment_metrics -> experiments (experiment_id));
diesel::joinable!(experiment_metrics -> metrics (metric_id));
diesel::joinable!(variants -> experiments (experiment_id));
diesel::joinable!(assignments -> variants (variant_id));

diesel::allow_tables_to_appear_in_same_query!(
    metrics,
    metric_parents,
    experiments,
    experiment_metrics,
    variants,
    assignments,
    observations,
    units,
);

diesel::table! {
    analyses (id) {
        id -> BigInt,
        experiment_id -> BigInt,
        created_at -> Timestamp,
        seed -> BigInt,
        fingerprint -> Text,
        parameters -> Text,
        result -> Text,
    }
}

diesel::joinable!(analyses -> experiments (experiment_id));
diesel::allow_tables_to_appear_in_same_query!(analyses, experiments);

diesel::table! {
    recommendations (id) {
        id -> BigInt,
        analysis_id -> Nullable<BigInt>,
        observational_analysis_id -> Nullable<BigInt>,
        sli_metric_id -> BigInt,
        kpi_metric_id -> BigInt,
        status -> Text,
        created_at -> Timestamp,
        created_by -> Text,
        document -> Text,
    }
}

diesel::table! {
    recommendation_events (id) {
        id -> BigInt,
        recommendation_id -> BigInt,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        comment -> Nullable<Text>,
    }
}

diesel::table! {
    slos (id) {
        id -> BigInt,
        recommendation_id -> BigInt,
        sli_metric_id -> BigInt,
        kpi_metric_id -> BigInt,
        status -> Text,
        published_at -> Timestamp,
        superseded_at -> Nullable<Timestamp>,
        superseded_by -> Nullable<BigInt>,
        validation -> Nullable<Text>,
        revalidation_id -> Nullable<BigInt>,
        calendar_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    slo_revalidations (id) {
        id -> BigInt,
        slo_id -> BigInt,
        analysis_id -> BigInt,
        at -> Timestamp,
        actor -> Text,
        outcome -> Text,
        reasons -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    recommendations,
    recommendation_events,
    slos,
    metrics,
    analyses
);

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        name -> Text,
        role -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sli_series (metric_id) {
        metric_id -> BigInt,
        kind -> Text,
        seconds -> Integer,
        bounds -> Nullable<Text>,
        revision -> BigInt,
        previous_revision -> Nullable<BigInt>,
        changed_from -> Nullable<BigInt>,
    }
}

diesel::table! {
    sli_windows (metric_id, start_at) {
        metric_id -> BigInt,
        start_at -> BigInt,
        total -> Double,
        good -> Nullable<Double>,
        value_sum -> Nullable<Double>,
        counts -> Nullable<Binary>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(sli_series, sli_windows, metrics);

diesel::table! {
    observational_analyses (id) {
        id -> BigInt,
        sli_metric_id -> BigInt,
        kpi_metric_id -> BigInt,
        created_at -> Timestamp,
        result -> Text,
    }
}

diesel::table! {
    ui_sessions (id_hash) {
        id_hash -> Text,
        token_id -> BigInt,
        csrf -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(ui_sessions -> api_tokens (token_id));
diesel::allow_tables_to_appear_in_same_query!(ui_sessions, api_tokens);

diesel::table! {
    calendars (id) {
        id -> BigInt,
        key -> Text,
        name -> Text,
        created_at -> Timestamp,
        created_by -> Text,
        periods -> Text,
        updated_at -> Nullable<Timestamp>,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    deploy_checks (id) {
        id -> BigInt,
        at -> Timestamp,
        actor -> Text,
        decision -> Text,
        document -> Text,
    }
}

diesel::joinable!(slos -> calendars (calendar_id));
diesel::allow_tables_to_appear_in_same_query!(slos, calendars);

diesel::table! {
    journeys (id) {
        id -> BigInt,
        key -> Text,
        name -> Text,
        objective -> Nullable<Double>,
        steps -> Text,
        created_at -> Timestamp,
        created_by -> Text,
        updated_at -> Nullable<Timestamp>,
        updated_by -> Nullable<Text>,
        budget_split -> Text,
    }
}

diesel::table! {
    early_warnings (id) {
        id -> BigInt,
        slo_id -> BigInt,
        indicator_metric_id -> BigInt,
        document -> Text,
        created_at -> Timestamp,
        created_by -> Text,
    }
}

diesel::table! {
    jobs (id) {
        id -> BigInt,
        kind -> Text,
        experiment_key -> Text,
        request -> Text,
        state -> Text,
        stage -> Text,
        progress -> Double,
        cancel_requested -> Bool,
        created_at -> Timestamp,
        created_by -> Text,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        analysis_id -> Nullable<BigInt>,
        error -> Nullable<Text>,
    }
}
