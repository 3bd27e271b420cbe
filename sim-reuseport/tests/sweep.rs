//! `sweep` and `merge` end to end, through the `reuseport-sim` binary: the
//! summary does not depend on `--jobs` or on sharding, an injected bug is
//! caught with a repro command that fails on its own, bad input exits 2,
//! and `vary` draws are per seed and reproduced by `run --seed`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A small new-first reload (about 1 ms per seed pair) with a lossy link and
/// a `vary` block, so that sweeps exercise every migration path.
const SMALL: &str = r#"{
  "version": 1,
  "name": "sweep-small",
  "description": "2 old + 2 new workers, new-first reload over a lossy link; latency, loss, rate, drain and a backlog drawn per seed.",
  "duration": "2s",
  "hosts": [
    { "name": "server", "addresses": ["10.0.0.1"] },
    { "name": "clients", "addresses": ["10.0.1.1", "10.0.1.2"] }
  ],
  "links": [ { "name": "wan", "between": ["clients", "server"], "latency": "2ms", "jitter": "100us" } ],
  "servers": [ { "name": "web", "host": "server", "address": "10.0.0.1", "port": 80 } ],
  "workers": [
    { "name": "old-0", "server": "web", "service_time": "1ms" },
    { "name": "old-1", "server": "web", "service_time": "1ms" },
    { "name": "new-0", "server": "web", "service_time": "1ms", "listen_at": null, "generation": 1 },
    { "name": "new-1", "server": "web", "service_time": "1ms", "listen_at": null, "generation": 1 }
  ],
  "clients": [
    { "name": "c", "host": "clients", "server": "web", "arrival": { "kind": "poisson", "rate": 200 }, "stop": "1500ms" }
  ],
  "timeline": [
    { "at": "500ms", "do": "reload_new_first", "old": ["old-0", "old-1"], "new": ["new-0", "new-1"], "drain": "300ms" }
  ],
  "vary": [
    { "path": "/links/0/latency", "min": "1ms", "max": "10ms" },
    { "path": "/links/0/loss", "min": "0%", "max": "2%" },
    { "path": "/clients/0/arrival/rate", "min": 100, "max": 400 },
    { "path": "/timeline/0/drain", "choices": ["100ms", "300ms", "500ms"] },
    { "path": "/workers/2/backlog", "min": 4, "max": 64 }
  ]
}"#;

const SEEDS: &str = "0..200";

struct Env {
    dir: tempfile::TempDir,
    file: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.json");
    std::fs::write(&file, SMALL).unwrap();
    Env { dir, file }
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reuseport-sim"));
    // A test run inside an array job must not be sharded by accident.
    for k in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_STEP",
        "JOB_COMPLETION_INDEX",
    ] {
        c.env_remove(k);
    }
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

#[test]
fn jobs_do_not_change_the_summary() {
    let e = env();
    for format in ["text", "json"] {
        let one = run(&[
            "sweep",
            s(&e.file),
            "--seeds",
            SEEDS,
            "--jobs",
            "1",
            "--format",
            format,
        ]);
        let two = run(&[
            "sweep",
            s(&e.file),
            "--seeds",
            SEEDS,
            "--jobs",
            "2",
            "--format",
            format,
        ]);
        assert_eq!(code(&one), 0, "{}{}", stdout(&one), stderr(&one));
        assert_eq!(code(&two), 0, "{}", stderr(&two));
        assert_eq!(one.stdout, two.stdout, "{format} summaries differ");
    }
    let json: Value = serde_json::from_slice(
        &run(&["sweep", s(&e.file), "--seeds", SEEDS, "--format", "json"]).stdout,
    )
    .unwrap();
    assert_eq!(json["result"], "pass");
    assert_eq!(json["seeds"]["count"], 200);
    // Every invariant ran; the determinism sample is not empty.
    for c in json["invariants"].as_array().unwrap() {
        assert!(c["checked"].as_u64().unwrap() > 0, "{c}");
        assert_eq!(c["failed"], 0, "{c}");
    }
    // The sweep exercised migration and resets.
    assert!(
        json["distributions"]["off"]["resets"]["max"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        json["distributions"]["on"]["migrations"]["max"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn shards_merge_to_the_unsharded_summary() {
    let e = env();
    let whole = e.dir.path().join("whole");
    let (a, b) = (e.dir.path().join("a"), e.dir.path().join("b"));
    let full = run(&[
        "sweep",
        s(&e.file),
        "--seeds",
        SEEDS,
        "--format",
        "json",
        "--out",
        s(&whole),
    ]);
    assert_eq!(code(&full), 0, "{}", stderr(&full));
    let o = run(&[
        "sweep",
        s(&e.file),
        "--seeds",
        SEEDS,
        "--shard",
        "0/2",
        "--out",
        s(&a),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("shard 0/2"));
    // The second shard takes its index from a Slurm array's environment.
    let o = bin()
        .args(["sweep", s(&e.file), "--seeds", SEEDS, "--out", s(&b)])
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("shard 1/2 (from SLURM_ARRAY_TASK_ID=1"));
    let merged = run(&["merge", s(&a), s(&b), "--format", "json"]);
    assert_eq!(code(&merged), 0, "{}", stderr(&merged));
    assert_eq!(stdout(&full), stdout(&merged));
    // Order of the arguments does not matter; text summaries agree too.
    let merged_text = run(&["merge", s(&b.join("seeds.jsonl")), s(&a)]);
    let full_text = run(&["merge", s(&whole)]);
    assert_eq!(code(&merged_text), 0, "{}", stderr(&merged_text));
    assert_eq!(stdout(&full_text), stdout(&merged_text));
    assert_eq!(
        stdout(&full),
        std::fs::read_to_string(whole.join("summary.json")).unwrap()
    );
    // The per-seed lines are the union of the shards'.
    let lines = std::fs::read_to_string(whole.join("seeds.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 200);
    let shard_lines = std::fs::read_to_string(a.join("seeds.jsonl"))
        .unwrap()
        .lines()
        .count()
        + std::fs::read_to_string(b.join("seeds.jsonl"))
            .unwrap()
            .lines()
            .count();
    assert_eq!(shard_lines, 200);
    assert!(std::fs::read_to_string(whole.join("resets.svg"))
        .unwrap()
        .starts_with("<svg"));
    // An incomplete set of shards is refused.
    let o = run(&["merge", s(&a)]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("missing seeds 1, 3, 5")
            && stderr(&o).contains("shards of 2 shard(s): is one missing?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_injected_bug_is_caught_and_its_repro_fails_alone() {
    let e = env();
    for bug in ["accept-queue", "final-ack", "synack-timer"] {
        let o = run(&[
            "sweep",
            s(&e.file),
            "--seeds",
            SEEDS,
            "--format",
            "json",
            "--inject-bug",
            bug,
        ]);
        assert_eq!(code(&o), 1, "{bug}: {}", stderr(&o));
        let json: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(json["result"], "fail");
        let failing = json["failing_seeds"].as_array().unwrap();
        assert!(!failing.is_empty(), "{bug}");
        let first = &failing[0];
        assert_eq!(
            first["failures"][0]["check"], "no_close_loss_with_live_listener",
            "{bug}: {first}"
        );
        // The drawn values are part of the failing seed's report.
        assert_eq!(first["varied"].as_object().unwrap().len(), 5);
        let repro = first["repro"].as_str().unwrap();
        assert!(
            repro.starts_with(&format!("reuseport-sim run {} --seed ", s(&e.file))),
            "{repro}"
        );
        assert!(
            repro.ends_with(&format!("--migrate on --inject-bug {bug}")),
            "{repro}"
        );
        // Run alone, the repro command shows the failure.
        let args: Vec<&str> = repro.split(' ').skip(1).collect();
        let alone = run(&args);
        assert_eq!(code(&alone), 1, "{repro}: {}", stderr(&alone));
        assert!(
            stderr(&alone).contains("invariant failed: [no_close_loss_with_live_listener]"),
            "{}",
            stderr(&alone)
        );
        // Without the bug, the same seed passes.
        let fixed: Vec<&str> = args.iter().copied().take(args.len() - 2).collect();
        let o = run(&fixed);
        assert_eq!(code(&o), 0, "{fixed:?}: {}", stderr(&o));
    }
    // The text summary is a report one can paste into a bug.
    let o = run(&[
        "sweep",
        s(&e.file),
        "--seeds",
        "0..40",
        "--inject-bug",
        "accept-queue",
    ]);
    assert_eq!(code(&o), 1);
    let text = stdout(&o);
    assert!(text.contains("result    FAIL:"), "{text}");
    assert!(
        text.contains("  drawn:  /clients/0/arrival/rate = "),
        "{text}"
    );
    assert!(text.contains("  repro:  reuseport-sim run "), "{text}");
    assert!(stderr(&o).contains("failing seed(s)"));
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let e = env();
    let f = s(&e.file);
    let cases: &[(&[&str], &str)] = &[
        (
            &["sweep", "no-such-file.json", "--seeds", "0..10"],
            "cannot read file",
        ),
        (&["sweep", f, "--seeds", "10..5"], "empty range"),
        (&["sweep", f, "--seeds", "ten"], "not a seed range"),
        (
            &["sweep", f, "--seeds", "0..10", "--shard", "2/2"],
            "out of range",
        ),
        (
            &["sweep", f, "--seeds", "0..10", "--shard", "1/0"],
            "at least 1",
        ),
        (
            &["sweep", f, "--seeds", "0..10", "--jobs", "0"],
            "at least 1",
        ),
        (
            &["sweep", f, "--seeds", "0..10", "--shards", "4"],
            "needs the shard index",
        ),
        (&["merge", "no-such-dir"], "not found"),
    ];
    for (args, want) in cases {
        let o = run(args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // Kubernetes Indexed Job without the shard count.
    let o = bin()
        .args(["sweep", f, "--seeds", "0..10"])
        .env("JOB_COMPLETION_INDEX", "3")
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--shards N"), "{}", stderr(&o));
    // A vary entry that points nowhere is caught before any run.
    let bad = e.dir.path().join("bad.json");
    std::fs::write(&bad, SMALL.replace("/links/0/latency", "/links/0/latencyx")).unwrap();
    for args in [
        vec!["sweep", s(&bad), "--seeds", "0..10"],
        vec!["validate", s(&bad)],
        vec!["run", s(&bad)],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{args:?}");
        assert!(
            stderr(&o).contains("vary[0].path") && stderr(&o).contains("does not point"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn vary_draws_differ_per_seed_and_run_reproduces_them() {
    let e = env();
    let out = e.dir.path().join("out");
    let o = run(&["sweep", s(&e.file), "--seeds", "100..140", "--out", s(&out)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines: Vec<Value> = std::fs::read_to_string(out.join("seeds.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 40);
    let latencies: std::collections::BTreeSet<String> = lines
        .iter()
        .map(|l| l["varied"]["/links/0/latency"].to_string())
        .collect();
    assert!(latencies.len() > 30, "{latencies:?}");
    for line in lines.iter().step_by(13) {
        let seed = line["seed"].as_u64().unwrap().to_string();
        for side in ["off", "on"] {
            let o = run(&[
                "run",
                s(&e.file),
                "--seed",
                &seed,
                "--migrate",
                side,
                "--format",
                "json",
            ]);
            assert_eq!(code(&o), 0, "{}", stderr(&o));
            let report: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(report["varied"], line["varied"], "seed {seed}");
            assert_eq!(report["digest"], line[side]["digest"], "seed {seed} {side}");
            assert_eq!(report["connections"]["reset"], line[side]["reset"]);
        }
        // `compare` applies the same draws.
        let o = run(&["compare", s(&e.file), "--seed", &seed, "--format", "json"]);
        let cmp: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(cmp["on"]["varied"], line["varied"]);
        assert_eq!(cmp["off"]["digest"], line["off"]["digest"]);
    }
}

/// Spawns a sweep into `out`, waits until `lines` seed results are in its
/// results file, and interrupts it with `signal`.
fn interrupted_sweep(e: &Env, out: &Path, lines: usize, signal: i32) -> Output {
    let child = bin()
        .args([
            "sweep",
            s(&e.file),
            "--seeds",
            "0..3000",
            "--jobs",
            "1",
            "--out",
        ])
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let seeds = out.join("seeds.jsonl");
    let deadline = std::time::Duration::from_secs(120);
    let t0 = std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap();
    loop {
        let n = std::fs::read_to_string(&seeds).map_or(0, |t| t.lines().count());
        if n >= lines {
            break;
        }
        let waited = std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap() - t0;
        assert!(waited < deadline, "the sweep wrote {n} lines in {waited:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    child.wait_with_output().unwrap()
}

#[test]
fn an_interrupted_sweep_keeps_its_work_and_resumes_to_the_same_summary() {
    let e = env();
    let whole = e.dir.path().join("whole");
    let part = e.dir.path().join("part");
    let o = interrupted_sweep(&e, &part, 40, libc::SIGINT);
    assert_eq!(code(&o), 130, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("interrupted (SIGINT)") && err.contains("--resume"),
        "{err}"
    );
    // Only whole lines, each a seed of the range; no temporary file.
    let kept = std::fs::read_to_string(part.join("seeds.jsonl")).unwrap();
    assert!(kept.ends_with('\n'));
    let n = kept.lines().count();
    assert!((40..3000).contains(&n), "{n} lines kept");
    for l in kept.lines() {
        serde_json::from_str::<Value>(l).expect("a whole JSON line");
    }
    let names: Vec<String> = std::fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    // Without --resume the kept work is not overwritten.
    let o = bin()
        .args(["sweep", s(&e.file), "--seeds", "0..3000", "--out"])
        .arg(&part)
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "refused without --resume: {}", stderr(&o));
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(part.join("seeds.jsonl")).unwrap(),
        kept
    );
    // Resumed (on another thread count), the summary is that of one sweep.
    let resumed = run(&[
        "sweep",
        s(&e.file),
        "--seeds",
        "0..3000",
        "--jobs",
        "2",
        "--out",
        s(&part),
        "--resume",
    ]);
    assert_eq!(code(&resumed), 0, "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains(&format!("resuming: {n} of 3000")));
    let full = run(&[
        "sweep",
        s(&e.file),
        "--seeds",
        "0..3000",
        "--out",
        s(&whole),
    ]);
    assert_eq!(code(&full), 0, "{}", stderr(&full));
    assert_eq!(stdout(&resumed), stdout(&full));
    for f in ["seeds.jsonl", "summary.json"] {
        assert_eq!(
            std::fs::read(part.join(f)).unwrap(),
            std::fs::read(whole.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn sigterm_exits_143() {
    let e = env();
    let out = e.dir.path().join("t");
    let o = interrupted_sweep(&e, &out, 5, libc::SIGTERM);
    assert_eq!(code(&o), 143, "{}", stderr(&o));
}

#[test]
fn sub_range_sweeps_merge_into_the_whole_range() {
    let e = env();
    let (a, b, c) = (
        e.dir.path().join("a"),
        e.dir.path().join("b"),
        e.dir.path().join("c"),
    );
    for (dir, seeds) in [(&a, "0..120"), (&b, "120..200"), (&c, "100..150")] {
        let o = run(&["sweep", s(&e.file), "--seeds", seeds, "--out", s(dir)]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let merged = run(&["merge", s(&a), s(&b), "--format", "json"]);
    assert_eq!(code(&merged), 0, "{}", stderr(&merged));
    let whole = run(&["sweep", s(&e.file), "--seeds", SEEDS, "--format", "json"]);
    let (m, w): (Value, Value) = (
        serde_json::from_slice(&merged.stdout).unwrap(),
        serde_json::from_slice(&whole.stdout).unwrap(),
    );
    assert_eq!(m["seeds"], w["seeds"]);
    assert_eq!(m["distributions"], w["distributions"]);
    // Overlapping parts and gaps are refused, naming the seeds.
    let o = run(&["merge", s(&a), s(&c)]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("seed 100 is in both"), "{}", stderr(&o));
    let o = run(&["merge", s(&b), s(&c)]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("seed 120 is in both"), "{}", stderr(&o));
    // The merged output cannot be written over one of its inputs.
    let o = run(&["merge", s(&a), s(&b), "--out", s(&a)]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("refusing to overwrite an input"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn resource_bounds_are_clear_errors() {
    let e = env();
    let o = run(&[
        "sweep",
        s(&e.file),
        "--seeds",
        "0..18446744073709551615",
        "--shard",
        "0/2",
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("shard the range"), "{}", stderr(&o));
    let o = run(&["sweep", s(&e.file), "--seeds", "0..10", "--jobs", "100000"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("per core"), "{}", stderr(&o));
    let o = run(&["run", "/dev/zero"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("larger than 16 MiB"), "{}", stderr(&o));
    let o = run(&["merge", "/dev/null"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

#[test]
fn a_vary_bound_past_the_duration_fails_before_any_seed() {
    // As ../shared/repro/vary_draw_past_duration.json: a bound of the
    // varied reload time lies past the 2 s duration.
    let e = env();
    let file = e.dir.path().join("v.json");
    let text = SMALL.replace(
        r#"{ "path": "/links/0/latency""#,
        r#"{ "path": "/timeline/0/at", "min": "1s", "max": "2.2s" },
    { "path": "/links/0/latency""#,
    );
    std::fs::write(&file, text).unwrap();
    let out = e.dir.path().join("out");
    for args in [
        vec!["validate", s(&file)],
        vec!["sweep", s(&file), "--seeds", "0..50", "--out", s(&out)],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("vary[0].max")
                && err.contains("/timeline/0/at")
                && err.contains("after the scenario's duration"),
            "{err}"
        );
    }
    assert!(!out.join("seeds.jsonl").exists(), "no seed ran");
}

#[test]
fn a_full_disk_still_prints_the_summary() {
    // A 64 KiB tmpfs stands for a full disk; mounting one needs root.
    let e = env();
    let mnt = e.dir.path().join("tiny");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("SKIPPED a_full_disk_still_prints_the_summary: cannot mount a tmpfs (not root?)");
        return;
    }
    let out = mnt.join("o");
    let o = run(&["sweep", s(&e.file), "--seeds", "0..1500", "--out", s(&out)]);
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stdout(&o).contains("result"), "the summary is printed");
    let err = stderr(&o);
    assert!(
        err.contains("could not be written") && err.contains("No space left"),
        "{err}"
    );
}
