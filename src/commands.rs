//! One function per subcommand: turn arguments into library configuration, call the library,
//! print the result. No logic of its own beyond that.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use shiftright_analyze::config::Method;
use shiftright_analyze::{ExperimentsFile, QueryFormat, ReportFormat};
use shiftright_ingest::{IngestConfig, IngestStats};
use shiftright_traffic::{EmbeddedBroker, JsonLinesSink, KafkaSink, Scenario, TopicNames};
use tokio_util::sync::CancellationToken;

use crate::cli::{
    AnalyzeArgs, BrokerArgs, CompactArgs, ExecutorArgs, FailOn, GenerateArgs, IngestArgs,
    MethodArg, Preset, ProduceArgs, QueryArgs, QueryFormatArg, ReadArgs, ReportArgs,
    ReportFormatArg, SchedulerArgs, SimulateArgs, SimulateFormatArg, TopicArgs,
};

impl TopicArgs {
    pub fn names(&self) -> TopicNames {
        TopicNames {
            requests: self.requests_topic.clone(),
            business: self.business_topic.clone(),
            exposures: self.exposures_topic.clone(),
        }
    }
}

pub async fn ingest(args: IngestArgs, shutdown: CancellationToken) -> anyhow::Result<u8> {
    let mut config = IngestConfig::new(args.brokers, args.out);
    config.group_id = args.group_id;
    config.requests_topic = args.topics.requests_topic;
    config.business_topic = args.topics.business_topic;
    config.exposures_topic = args.topics.exposures_topic;
    config.flush_rows = args.flush_rows;
    config.flush_bytes = args.flush_bytes;
    config.flush_interval = args.flush_interval;
    config.flush_caught_up = args.flush_caught_up;
    config.max_buffer_bytes = args.max_buffer_bytes;
    config.max_message_bytes = args.max_message_bytes;
    config.max_event_age = args.max_event_age;
    config.max_event_future = args.max_event_future;
    config.synthetic_prefixes = args.synthetic_prefixes;
    config.idle_exit = args.idle_exit;
    config.kafka_options = args.kafka.kafka_options;
    config.metrics_addr = args.metrics_addr.0;
    config.dead_letter_topic = args.dead_letter_topic;
    config.accept_offset_reset = args.accept_offset_reset;
    let stats = Arc::new(IngestStats::default());
    let summary = shiftright_ingest::run(config, shutdown, stats).await?;
    eprintln!(
        "ingested {} messages: {} requests, {} business, {} exposures, {} dead letters in {} files",
        summary.messages,
        summary.request_rows,
        summary.business_rows,
        summary.exposure_rows,
        summary.dead_letters,
        summary.files
    );
    Ok(0)
}

impl ReadArgs {
    pub fn options(&self) -> shiftright_analyze::ReadOptions {
        shiftright_analyze::ReadOptions {
            skip_corrupt: self.skip_corrupt,
            engine: shiftright_analyze::Engine {
                threads: self.threads,
                memory_limit: self.memory_limit,
                spill_dir: self.spill_dir.clone(),
                cluster: self.cluster.clone(),
            },
            scope: Default::default(),
        }
    }
}

/// The experiments file (or the defaults), with `--method` over it.
pub fn experiments_of(
    path: Option<&std::path::Path>,
    method: Option<MethodArg>,
) -> anyhow::Result<ExperimentsFile> {
    let mut experiments = match path {
        Some(path) => ExperimentsFile::load(path)?,
        None => ExperimentsFile::default(),
    };
    if let Some(method) = method {
        experiments = experiments.with_method(match method {
            MethodArg::Sequential => Method::Sequential,
            MethodArg::Fixed => Method::Fixed,
        });
    }
    Ok(experiments)
}

pub async fn report(args: ReportArgs) -> anyhow::Result<u8> {
    use shiftright_analyze::present::pages::{self, Progress};
    use std::io::IsTerminal;
    let experiments = experiments_of(args.experiments.as_deref(), args.method)?;
    let date = args.date.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!("analysing the experiments of {date}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut progress = |p: Progress| match p {
        Progress::Analysed(n) => {
            bar.set_length(n as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} pages {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message("");
        }
        Progress::PageWritten => bar.inc(1),
    };
    let written = pages::write_day(
        &args.data,
        args.read.options(),
        &experiments,
        date,
        &args.out,
        &mut progress,
    )
    .await?;
    bar.finish_and_clear();
    for r in &written.reports {
        println!(
            "{:<10} {}  {}",
            r.verdict.as_str(),
            r.experiment,
            args.out
                .join(format!("{}.html", pages::file_stem(&r.experiment)))
                .display()
        );
    }
    println!(
        "{} experiments of {date}; index: {}",
        written.reports.len(),
        args.out.join("index.html").display()
    );
    if !args.no_history {
        record_history(&args.data, "report", &written.reports);
    }
    Ok(0)
}

pub async fn analyze(args: AnalyzeArgs) -> anyhow::Result<u8> {
    let experiments = experiments_of(args.experiments.as_deref(), args.method)?;
    let reports =
        shiftright_analyze::analyze_with(&args.data, args.read.options(), &experiments, &args.only)
            .await?;
    if reports.is_empty() {
        bail!(
            "no experiments found under {}: the exposures and requests tables are empty",
            args.data.display()
        );
    }
    let format = match args.format {
        ReportFormatArg::Table => ReportFormat::Table,
        ReportFormatArg::Json => ReportFormat::Json,
        ReportFormatArg::Markdown => ReportFormat::Markdown,
    };
    print!("{}", shiftright_analyze::render(&reports, format)?);
    if !args.no_history {
        record_history(&args.data, "analyze", &reports);
    }
    Ok(exit_code(&reports, &args.fail_on))
}

/// The exit code of `analyze`: that of the most severe verdict among those `--fail-on` names
/// (ROLLBACK 3, INVALID 4, CONTINUE 5, PROMOTE 6), else 0.
fn exit_code(reports: &[shiftright_analyze::Report], fail_on: &[FailOn]) -> u8 {
    use shiftright_analyze::Verdict;
    let code = |v: Verdict| match v {
        Verdict::Rollback => 3,
        Verdict::Invalid => 4,
        Verdict::Continue => 5,
        Verdict::Promote => 6,
    };
    let named = |v: Verdict| {
        fail_on.contains(&match v {
            Verdict::Rollback => FailOn::Rollback,
            Verdict::Invalid => FailOn::Invalid,
            Verdict::Continue => FailOn::Continue,
            Verdict::Promote => FailOn::Promote,
        })
    };
    // Most severe first: a ROLLBACK anywhere decides the code.
    [
        Verdict::Rollback,
        Verdict::Invalid,
        Verdict::Continue,
        Verdict::Promote,
    ]
    .into_iter()
    .find(|v| named(*v) && reports.iter().any(|r| r.verdict == *v))
    .map_or(0, code)
}

/// Appends the run to the results history. A failure is reported, not fatal: the verdict and its
/// exit code are what a pipeline gates on.
fn record_history(data: &std::path::Path, command: &str, reports: &[shiftright_analyze::Report]) {
    let run = shiftright_analyze::present::history::Run::now(command);
    if let Err(e) = shiftright_analyze::present::history::append(data, &run, reports) {
        let chain: Vec<String> = anyhow::Error::from(e)
            .chain()
            .map(|c| c.to_string())
            .collect();
        eprintln!(
            "warning: the results history was not updated: {} (pass --no-history to skip it)",
            chain.join(": ")
        );
    }
}

pub async fn query(args: QueryArgs) -> anyhow::Result<u8> {
    if args.list {
        for q in shiftright_analyze::read::queries::QUERIES {
            let params: Vec<String> = shiftright_analyze::read::queries::placeholders(q.sql)
                .into_iter()
                .map(|p| format!("--param {p}=…"))
                .collect();
            println!("{:<24} {}", q.name, q.summary());
            if !params.is_empty() {
                println!("{:<24}   needs {}", "", params.join(" "));
            }
        }
        return Ok(0);
    }
    let data = args.data.context("--data is required")?;
    let sql = match (&args.sql, &args.name, &args.file) {
        (Some(sql), _, _) => sql.clone(),
        (None, Some(name), _) => shiftright_analyze::read::queries::named(name)
            .ok_or_else(|| shiftright_analyze::Error::UnknownQuery(name.clone()))?
            .sql
            .to_string(),
        (None, None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("reading the query file {}", file.display()))?,
        (None, None, None) => bail!("give SQL, --name NAME or --file FILE"),
    };
    if args.format == QueryFormatArg::Parquet && args.out.is_none() {
        bail!("--format parquet writes a file: give --out FILE.parquet");
    }
    if let Some(out) = &args.out {
        refuse_inside_data(&data, out)?;
    }
    let (schema, batches) =
        shiftright_analyze::query_with_options(&data, args.read.options(), &sql, &args.params)
            .await?;
    let text = match args.format {
        QueryFormatArg::Parquet => {
            let out = args.out.as_deref().context("--out is required")?;
            shiftright_analyze::write_parquet(schema, &batches, out)?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            eprintln!("wrote {rows} rows to {}", out.display());
            return Ok(0);
        }
        QueryFormatArg::Table => shiftright_analyze::render_batches(&batches, QueryFormat::Table)?,
        QueryFormatArg::Csv => shiftright_analyze::render_batches(&batches, QueryFormat::Csv)?,
        QueryFormatArg::Json => shiftright_analyze::render_batches(&batches, QueryFormat::Json)?,
    };
    match &args.out {
        Some(out) => {
            std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?
        }
        None => print!("{text}"),
    }
    Ok(0)
}

/// A query's `--out` under a table directory of `--data` would be read back as data (a Parquet
/// file there is one more partition), so it is refused.
fn refuse_inside_data(data: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let Ok(parent) = parent.canonicalize() else {
        return Ok(());
    };
    for dir in shiftright_analyze::read::tables::table_dirs(data) {
        if dir.canonicalize().is_ok_and(|dir| parent.starts_with(dir)) {
            bail!(
                "--out {} is inside the table directory {}: a result written there would be read back as data; write it elsewhere",
                out.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// The scenario the arguments describe.
pub fn scenario_of(args: &GenerateArgs) -> anyhow::Result<Scenario> {
    let scenario = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("parsing the scenario {}", path.display()))?
        }
        None => {
            let mut s = Scenario::demo(args.users, args.seed);
            s.malformed_share = args.malformed_share;
            match args.preset {
                Preset::Demo => {}
                Preset::BadCanary => s.experiments.truncate(1),
                Preset::HealthyCanary => {
                    s.experiments.remove(0);
                }
            }
            s
        }
    };
    scenario
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid scenario: {e}"))?;
    Ok(scenario)
}

pub async fn generate(args: GenerateArgs) -> anyhow::Result<u8> {
    let scenario = scenario_of(&args)?;
    let topics = args.topics.names();
    let now = chrono::Utc::now().timestamp_millis();
    let summary = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        if let Some(dir) = &args.out_dir {
            let mut sink = JsonLinesSink::new(dir, topics)?;
            let summary = shiftright_traffic::generate(&scenario, now, &mut |m| sink.send(&m))?;
            sink.finish()?;
            Ok(summary)
        } else {
            let brokers = args
                .brokers
                .as_deref()
                .context("--brokers or --out-dir is required")?;
            let sink = KafkaSink::new(brokers, topics, &args.kafka.kafka_options)?;
            let summary = shiftright_traffic::generate(&scenario, now, &mut |m| sink.send(&m))?;
            sink.finish(Duration::from_secs(120))?;
            Ok(summary)
        }
    })
    .await??;
    eprintln!(
        "generated {} messages: {} requests, {} business, {} exposures, {} malformed, {} duplicates",
        summary.messages, summary.requests, summary.business, summary.exposures, summary.malformed, summary.duplicates
    );
    Ok(0)
}

pub async fn compact(args: CompactArgs) -> anyhow::Result<u8> {
    use shiftright_ingest::compact::{compact, CompactOptions};
    let dry = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let (retained, compacted) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let retained = match args.retain {
            Some(retain) => {
                let horizon = chrono::Utc::now()
                    - chrono::Duration::from_std(retain).context("--retain is too long")?;
                let horizon = horizon.format("%Y-%m-%d").to_string();
                let summary = shiftright_ingest::retain::retain(
                    &args.data,
                    &horizon,
                    args.older_than,
                    args.dry_run,
                )
                .with_context(|| {
                    format!(
                        "removing the dates of {} before {horizon}",
                        args.data.display()
                    )
                })?;
                Some((horizon, summary))
            }
            None => None,
        };
        let options = CompactOptions {
            older_than: args.older_than,
            target_bytes: args.target_size,
            keep_replaced: args.keep_replaced,
            dry_run: args.dry_run,
        };
        let compacted = compact(&args.data, &options)
            .with_context(|| format!("compacting {}", args.data.display()))?;
        Ok((retained, compacted))
    })
    .await??;
    if let Some((horizon, r)) = retained {
        println!(
            "retention: {dry} {} file(s), {} bytes, dates before {horizon}{}",
            r.files,
            r.bytes,
            if r.dates.is_empty() {
                String::new()
            } else {
                format!(": {}", r.dates.join(", "))
            }
        );
        if r.kept > 0 {
            println!(
                "retention: kept {} file(s) past the horizon whose flush batches also wrote to later dates, are still being written, or are younger than --older-than (removed by a later run)",
                r.kept
            );
        }
    }
    let c = &compacted;
    let merge = if c.written == 0 {
        "nothing to merge".to_string()
    } else if args.dry_run {
        format!(
            "would merge {} file(s) ({} bytes) into {} in {} director(ies)",
            c.merged, c.bytes_before, c.written, c.directories
        )
    } else {
        format!(
            "merged {} file(s) ({} bytes) into {} ({} bytes, {} rows) in {} director(ies)",
            c.merged, c.bytes_before, c.written, c.bytes_after, c.rows, c.directories
        )
    };
    println!("compaction: {merge}");
    if c.replaced_removed + c.replaced_kept + c.temporary_removed > 0 {
        println!(
            "compaction: removed {} file(s) merges had replaced and {} temporary file(s); {} replaced file(s) stay until their merge is --keep-replaced old (readers leave them out)",
            c.replaced_removed, c.temporary_removed, c.replaced_kept
        );
    }
    for (path, why) in &c.damaged {
        println!(
            "compaction: not merged, damaged: {}: {why} (queries that read it fail; --skip-corrupt leaves it out)",
            path.display()
        );
    }
    Ok(0)
}

pub async fn broker(args: BrokerArgs, shutdown: CancellationToken) -> anyhow::Result<u8> {
    let broker = EmbeddedBroker::start(args.brokers)?;
    for topic in args.topics.names().all() {
        broker.create_topic(topic, args.partitions)?;
    }
    // The one line scripts read: the bootstrap servers.
    println!("{}", broker.bootstrap_servers());
    eprintln!(
        "embedded broker at {} with topics {:?} ({} partitions each); stop with Ctrl-C",
        broker.bootstrap_servers(),
        args.topics.names().all(),
        args.partitions
    );
    shutdown.cancelled().await;
    drop(broker);
    Ok(0)
}

pub async fn produce(args: ProduceArgs) -> anyhow::Result<u8> {
    use std::io::BufRead;
    let sent = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
            Box::new(std::io::BufReader::new(std::io::stdin()))
        } else {
            let file = std::fs::File::open(&args.file)
                .with_context(|| format!("opening {}", args.file.display()))?;
            Box::new(std::io::BufReader::new(file))
        };
        let sink =
            shiftright_traffic::RawSink::with_options(&args.brokers, &args.kafka.kafka_options)?;
        let mut sent = 0;
        for (number, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("reading line {}", number + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            let key = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| {
                    v.get(&args.key_field)
                        .and_then(|k| k.as_str())
                        .map(str::to_owned)
                });
            sink.send(&args.topic, key.as_deref(), line.as_bytes())?;
            sent += 1;
        }
        sink.finish(Duration::from_secs(120))?;
        Ok(sent)
    })
    .await??;
    eprintln!("produced {sent} messages");
    Ok(0)
}

pub fn simulate(args: SimulateArgs) -> anyhow::Result<u8> {
    use shiftright_bench::simulate::{self, Scenario, SimulationConfig};
    if !(args.canary_share > 0.0 && args.canary_share < 1.0) {
        bail!(
            "--canary-share must be between 0 and 1, got {}",
            args.canary_share
        );
    }
    if !(args.error_rate > 0.0 && args.error_rate < 1.0) {
        bail!(
            "--error-rate must be between 0 and 1, got {}",
            args.error_rate
        );
    }
    if args.look_every == 0 || args.horizon < args.look_every || args.canaries == 0 {
        bail!("need --canaries ≥ 1 and --horizon ≥ --look-every ≥ 1");
    }
    let config = SimulationConfig {
        canaries: args.canaries,
        users_per_minute: args.users_per_minute,
        canary_share: args.canary_share,
        look_every_min: args.look_every,
        horizon_min: args.horizon,
        base_error_rate: args.error_rate,
        seed: args.seed,
        ..SimulationConfig::default()
    };
    let progress = |scenario: &Scenario, method: Method| {
        eprintln!(
            "simulating {} canaries, {}: {}…",
            config.canaries,
            method.name(),
            scenario.name
        );
    };
    let results = simulate::run(&config, &Scenario::standard(), &progress);
    match args.format {
        SimulateFormatArg::Markdown => print!("{}", simulate::to_markdown(&config, &results)),
        SimulateFormatArg::Json => println!("{}", serde_json::to_string_pretty(&results)?),
    }
    Ok(0)
}

pub async fn scheduler(args: SchedulerArgs, shutdown: CancellationToken) -> anyhow::Result<u8> {
    eprintln!(
        "scheduler listening on {}; run executors with `shiftright executor --scheduler df://{}` \
         and queries with --cluster df://{}",
        args.bind, args.bind, args.bind
    );
    let options = shiftright_cluster::SchedulerOptions {
        bind: args.bind,
        advertise_host: args.advertise_host,
    };
    shiftright_cluster::run_scheduler(options, shutdown).await?;
    Ok(0)
}

pub async fn executor(args: ExecutorArgs, shutdown: CancellationToken) -> anyhow::Result<u8> {
    eprintln!(
        "executor registering with the scheduler at {} (it keeps trying for a minute); tasks on \
         {}:{}, results served on {}:{}; --log info shows each task",
        args.scheduler, args.bind, args.grpc_port, args.bind, args.flight_port
    );
    let options = shiftright_cluster::ExecutorOptions {
        scheduler: args.scheduler,
        bind_host: args.bind,
        flight_port: args.flight_port,
        grpc_port: args.grpc_port,
        advertise_host: args.advertise_host,
        threads: args.threads,
        memory_limit: args.memory_limit,
        work_dir: args.work_dir,
    };
    shiftright_cluster::run_executor(options, shutdown).await?;
    Ok(0)
}
