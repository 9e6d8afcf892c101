use clap::Parser;
use sloproof::cli::{Cli, Command, SeriesFormat};

fn main() -> anyhow::Result<()> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `gate` exits 2 for "needs approval": its usage errors exit 3 (could not check).
            let gate = std::env::args().nth(1).as_deref() == Some("gate");
            let code = if gate && e.use_stderr() {
                3
            } else {
                e.exit_code()
            };
            let _ = e.print();
            std::process::exit(code)
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            print!("{}", sloproof::api::openapi::document_json());
            Ok(())
        }
        Command::BenchStats {
            units,
            resamples,
            seed,
        } => {
            let steps = sloproof::bench::run(units, resamples, seed)?;
            println!("{}", serde_json::to_string_pretty(&steps)?);
            Ok(())
        }
        Command::Simulate { api, token, config } => {
            let sim = sloproof::simulate::stream(&config)?;
            let key = actix_web::rt::System::new()
                .block_on(sloproof::simulate::load_stream(&api, &token, sim))?;
            println!("loaded experiment '{key}'; analyse it with:");
            println!("  curl -s -X POST {api}/api/v1/experiments/{key}/analyses");
            Ok(())
        }
        Command::Gate {
            api,
            token,
            slos,
            journey,
            priority,
            description,
            expected_budget_burn,
        } => {
            use sloproof::gate_client::{ask, exit_code, report, GateRequest};
            let request = GateRequest {
                api: &api,
                token: &token,
                slos: &slos,
                journey: journey.as_deref(),
                priority: &priority,
                description: &description,
                expected_budget_burn,
            };
            let code = match actix_web::rt::System::new().block_on(ask(&request)) {
                Ok(answer) => {
                    print!("{}", report(&answer));
                    exit_code(answer["decision"].as_str().unwrap_or(""))
                }
                Err(e) => {
                    eprintln!("sloproof gate: {e:#}");
                    3
                }
            };
            std::process::exit(code)
        }
        Command::SimulateSeries {
            format,
            name,
            bounds,
            config,
        } => {
            use sloproof::simulate_series::{generate, ndjson, openmetrics, DEFAULT_BOUNDS_MS};
            let bounds = bounds.unwrap_or_else(|| DEFAULT_BOUNDS_MS.to_vec());
            anyhow::ensure!(
                bounds.windows(2).all(|w| w[0] < w[1]) && bounds.iter().all(|b| *b > 0.0),
                "bounds must be positive and increasing"
            );
            let windows = generate(&config, &bounds)?;
            let text = match format {
                SeriesFormat::Ndjson => ndjson(&windows, &bounds, config.window_seconds),
                SeriesFormat::Openmetrics => {
                    openmetrics(&windows, &bounds, config.window_seconds, &name)
                }
            };
            print!("{text}");
            Ok(())
        }
        Command::Serve => {
            sloproof::server::init_logging(&cli.settings)?;
            actix_web::rt::System::new().block_on(sloproof::server::serve(cli.settings))
        }
    }
}
