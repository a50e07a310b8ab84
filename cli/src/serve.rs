//! `highlights serve`: the API router and the static site on one local port, exactly the router
//! the API Lambda runs. For local use and load tests; production serves the site from CloudFront.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use api_function::{ApiState, site_router};
use highlights_adapters::postgres::Database;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The static site to serve next to the API.
    #[arg(long, default_value = "web", value_name = "DIR")]
    web_dir: PathBuf,
    /// PostgreSQL connection string; default: DATABASE_URL_API (the API's read-only user, in
    /// `.local/stack/env`), else DATABASE_URL.
    #[arg(long)]
    database_url: Option<String>,
    /// Database connections (the Lambda uses 2).
    #[arg(long, default_value_t = 8)]
    connections: usize,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if !args.web_dir.join("index.html").is_file() {
        bail!(
            "{} has no index.html: pass --web-dir pointing at the repository's web/ folder",
            args.web_dir.display()
        );
    }
    let url = crate::stack::component_database_url(args.database_url, "api")?;
    let pool = Database::from_url(&url)?.pool(args.connections)?;
    crate::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        // Tests and scripts read this line to find the port.
        eprintln!("serving http://{address}/ (API under /v1.0, site from {})", args.web_dir.display());
        axum::serve(listener, site_router(ApiState::new(pool), &args.web_dir))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("the server failed")
    })
}
