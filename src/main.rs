use clap::Parser;
use sloproof::cli::{Cli, Command, SeriesFormat};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
            let sim = sloproof::simulate::generate(&config)?;
            actix_web::rt::System::new().block_on(sloproof::simulate::load(&api, &token, &sim))?;
            println!("loaded experiment '{}'; analyse it with:", config.key);
            println!(
                "  curl -s -X POST {api}/api/v1/experiments/{}/analyses",
                config.key
            );
            Ok(())
        }
        Command::SimulateSeries {
            format,
            name,
            config,
        } => {
            use sloproof::simulate_series::{generate, ndjson, openmetrics, DEFAULT_BOUNDS_MS};
            let windows = generate(&config, &DEFAULT_BOUNDS_MS)?;
            let text = match format {
                SeriesFormat::Ndjson => ndjson(&windows, &DEFAULT_BOUNDS_MS, config.window_seconds),
                SeriesFormat::Openmetrics => {
                    openmetrics(&windows, &DEFAULT_BOUNDS_MS, config.window_seconds, &name)
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
