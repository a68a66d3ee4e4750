//! Ingest processes of one consumer group split the partitions while the group scales up and
//! down mid-stream (one, then three, one SIGKILLed, one stopped), and a member frozen past its
//! session writes nothing twice; the union of their output is exactly the input. On the
//! embedded broker served to every process, and on tansu.

mod common;

use std::time::{Duration, Instant};

use common::{produce_requests, request_ids, required, IngestProcess, Tansu};

/// Scales one group up and down while events keep arriving: A alone, then B and C join, B is
/// SIGKILLed, C is stopped, A finishes. `events` are produced in four waves, one per step, so
/// every membership reads some. The union of the output is exactly the input.
async fn scale_up_and_down(
    brokers: &str,
    events: u64,
    producer: &'static [(&'static str, &'static str)],
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--flush-rows",
        "2000",
        "--flush-interval",
        "300ms",
        "--kafka-option",
        "session.timeout.ms=6000",
        "--kafka-option",
        "max.poll.interval.ms=10000",
    ];
    let wave = events / 4;
    let produce = |n: u64| {
        let brokers = brokers.to_string();
        async move {
            tokio::task::spawn_blocking(move || {
                produce_requests(&brokers, &format!("w{n}-"), wave, producer)
            })
            .await
            .unwrap();
        }
    };
    let durable_at_least = |rows: u64, limit: Duration| {
        let data = data.clone();
        async move {
            let deadline = Instant::now() + limit;
            while request_ids(&data).await.0 < rows && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            request_ids(&data).await
        }
    };
    let spawn = |name: &str| {
        IngestProcess::spawn(
            brokers,
            &data,
            "scale",
            &args,
            dir.path().join(format!("{name}.log")),
        )
    };
    produce(1).await;
    let a = spawn("a");
    eprintln!(
        "A alone: {:?}",
        durable_at_least(wave / 2, Duration::from_secs(60)).await
    );
    let b = spawn("b");
    let c = spawn("c");
    // The next wave once both newcomers have partitions, so that all three read some of it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(b.log_text().contains("partition assigned")
        && c.log_text().contains("partition assigned"))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    produce(2).await;
    eprintln!(
        "A, B, C: {:?}",
        durable_at_least(wave * 2, Duration::from_secs(60)).await
    );
    let (b_read, c_read) = (b.consumed(), c.consumed());
    eprintln!("read so far: A {}, B {b_read}, C {c_read}", a.consumed());
    assert!(
        b_read > 0 && c_read > 0,
        "B and C read nothing:\n{}\n{}",
        b.log_text(),
        c.log_text()
    );
    b.kill();
    produce(3).await;
    eprintln!(
        "B killed: {:?}",
        durable_at_least(wave * 5 / 2, Duration::from_secs(90)).await
    );
    let c_log = c.log.clone();
    let status = c.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "C: {status}\n{}",
        std::fs::read_to_string(c_log).unwrap_or_default()
    );
    produce(4).await;
    let end = durable_at_least(wave * 4, Duration::from_secs(180)).await;
    let a_log = a.log.clone();
    let status = a.terminate(Duration::from_secs(30));
    let a_text = std::fs::read_to_string(a_log).unwrap_or_default();
    assert!(status.success(), "A: {status}\n{a_text}");
    assert_eq!(end, (wave * 4, wave * 4), "A's log:\n{a_text}");
    assert_eq!(request_ids(&data).await, (wave * 4, wave * 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_on_the_embedded_broker_keeps_exactly_once() {
    let (_broker, brokers) = common::embedded_broker(6);
    tokio::time::timeout(
        Duration::from_secs(400),
        scale_up_and_down(&brokers, 60_000, &[]),
    )
    .await
    .expect("took over 5 minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_on_tansu_keeps_exactly_once() {
    let Some(binary) = Tansu::binary() else {
        assert!(
            !required("SHIFTRIGHT_REQUIRE_TANSU"),
            "tansu is required here (.ci/run installs it)"
        );
        eprintln!("skipping: tansu is not installed");
        return;
    };
    let tansu = common::start_tansu(binary, 4);
    let brokers = tansu.bootstrap_servers().to_string();
    // tansu loses messages when a consumer resumes in the middle of a producer batch, and this test
    // resumes consumers on purpose: one message per batch avoids its fault (DEVELOPERS.md).
    tokio::time::timeout(
        Duration::from_secs(400),
        scale_up_and_down(&brokers, 20_000, &[("batch.num.messages", "1")]),
    )
    .await
    .expect("took over 5 minutes");
}

/// Sends `signal` (STOP, CONT) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A member frozen (SIGSTOP: a VM pause, a stalled disk) past its session timeout loses its
/// partitions to another member while its buffers are full; thawed, it must not write them next
/// to the new owner's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_member_that_lost_its_partitions_writes_nothing_twice() {
    let (_broker, brokers) = common::embedded_broker(4);
    let b = brokers.clone();
    tokio::task::spawn_blocking(move || produce_requests(&b, "z", 20_000, &[]))
        .await
        .unwrap();
    let run = async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let args = [
            "--flush-interval",
            "4s",
            "--flush-caught-up",
            "4s",
            "--kafka-option",
            "session.timeout.ms=6000",
        ];
        let a = IngestProcess::spawn(&brokers, &data, "frozen", &args, dir.path().join("a.log"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while a.consumed() < 20_000 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Everything read, nothing flushed yet (4 s): freeze it with its buffers full.
        let read = a.consumed();
        signal(a.pid(), "STOP");
        let (rows, _) = request_ids(&data).await;
        eprintln!("A read {read} and wrote {rows} before it froze");
        // B flushes in smaller batches than A's, so that a late write of A's would not just
        // replace B's files of the same name.
        let mut b_args = args.to_vec();
        b_args.extend_from_slice(&["--idle-exit", "12s", "--flush-rows", "1000"]);
        let mut b =
            IngestProcess::spawn(&brokers, &data, "frozen", &b_args, dir.path().join("b.log"));
        // A's session (6 s) runs out and B is given every partition; without a fence B would
        // write them all within this time.
        tokio::time::sleep(Duration::from_secs(15)).await;
        eprintln!(
            "with A frozen, after B joined: {:?} durable",
            request_ids(&data).await
        );
        signal(a.pid(), "CONT");
        let status = b.wait(Duration::from_secs(120));
        let a_log = a.log.clone();
        let a_status = a.terminate(Duration::from_secs(30));
        eprintln!(
            "A: {a_status}, B: {status}; A's log:\n{}",
            std::fs::read_to_string(&a_log).unwrap_or_default()
        );
        let (rows, distinct) = request_ids(&data).await;
        assert_eq!(
            (rows, distinct),
            (20_000, 20_000),
            "A's log:\n{}\nB's log:\n{}",
            std::fs::read_to_string(a_log).unwrap_or_default(),
            b.log_text()
        );
    };
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("took over 5 minutes");
}
