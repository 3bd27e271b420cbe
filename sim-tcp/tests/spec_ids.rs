//! Every rule a report can print must be explained in the repository:
//! each § id in an RST or drop cause's `spec_rule()` (with its step, if any)
//! and each §7 row of `spec_id()` must be a heading of `docs/model.md`, and
//! each cause's report name must appear there. A new cause that cites a rule
//! the document lacks fails here.

use sim_tcp::{DropCause, RstCause};

fn model_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/model.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The text of every Markdown heading (`#` … `######`), without the marks.
fn headings(doc: &str) -> Vec<&str> {
    doc.lines()
        .filter_map(|line| {
            let hashes = line.len() - line.trim_start_matches('#').len();
            ((1..=6).contains(&hashes) && line[hashes..].starts_with(' '))
                .then(|| line[hashes..].trim())
        })
        .collect()
}

/// Whether some heading starts with `id` as a whole token: "§5.1" must not
/// match the heading "§5.10 …", nor "§5.4 step 1" the heading "§5.4 step 10".
fn has_heading(headings: &[&str], id: &str) -> bool {
    headings.iter().any(|h| {
        h.strip_prefix(id).is_some_and(|rest| {
            !rest
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.')
        })
    })
}

/// The § ids cited in a rule string: "§5.4 step 6 (aoo=1)" gives
/// ["§5.4 step 6"], "§5.2 step 2 (§7 I)" gives ["§5.2 step 2", "§7 I"],
/// "§5.4 (no target) + §5.5" gives ["§5.4", "§5.5"].
fn cited_ids(rule: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for (start, _) in rule.match_indices('§') {
        let after = &rule[start + '§'.len_utf8()..];
        let num_len = after
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(after.len());
        let number = after[..num_len].trim_end_matches('.');
        assert!(!number.is_empty(), "a § without a number in {rule:?}");
        let rest = &after[num_len..];
        let mut id = format!("§{number}");
        if let Some(step) = rest.strip_prefix(" step ") {
            let n: String = step.chars().take_while(char::is_ascii_digit).collect();
            assert!(!n.is_empty(), "\"step\" without a number in {rule:?}");
            id = format!("{id} step {n}");
        } else if number == "7" {
            // A §7 row: one capital letter standing alone.
            let mut chars = rest.chars();
            if let (Some(' '), Some(letter)) = (chars.next(), chars.next()) {
                if letter.is_ascii_uppercase()
                    && !chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
                {
                    id = format!("§7 {letter}");
                }
            }
        }
        ids.push(id);
    }
    ids
}

/// Exhaustive: adding a variant without listing it here does not compile,
/// and listing it here without adding it to `RstCause::ALL` fails below.
fn rst_index(c: RstCause) -> usize {
    match c {
        RstCause::ListenerCloseChild => 0,
        RstCause::ForgottenChild => 1,
        RstCause::ClosedListenerRequest => 2,
        RstCause::MigratedAcceptQueueOverflow => 3,
        RstCause::NoRequest => 4,
        RstCause::NoListener => 5,
        RstCause::PolicyDrop => 6,
        RstCause::AcceptQueueOverflow => 7,
        RstCause::BadAck => 8,
        RstCause::SynInWindow => 9,
        RstCause::InvalidCookie => 10,
        RstCause::ApplicationAbort => 11,
        RstCause::AbortOnData => 12,
    }
}

/// As [`rst_index`], for `DropCause::ALL`.
fn drop_index(c: DropCause) -> usize {
    match c {
        DropCause::SynAcceptQueueFull => 0,
        DropCause::SynQueueFull => 1,
        DropCause::SynBacklogQuarter => 2,
        DropCause::RequestTimerNoTarget => 3,
        DropCause::RequestExpired => 4,
        DropCause::FinalAckAcceptQueueFull => 5,
        DropCause::CookieAckAcceptQueueFull => 6,
        DropCause::NoAckFlag => 7,
        DropCause::ListenerIgnored => 8,
        DropCause::RequestReset => 9,
        DropCause::DuplicateSynRateLimited => 10,
        DropCause::RstNotAnswered => 11,
        DropCause::OutOfWindow => 12,
        DropCause::RstOutOfWindow => 13,
        DropCause::RstChallenged => 14,
        DropCause::DeferAcceptBareAck => 15,
    }
}

/// Every cause as (report name, rule, §7 row or None).
fn all_causes() -> Vec<(&'static str, &'static str, Option<&'static str>)> {
    let rst = RstCause::ALL
        .iter()
        .map(|c| (c.name(), c.spec_rule(), Some(c.spec_id())));
    let drop = DropCause::ALL
        .iter()
        .map(|c| (c.name(), c.spec_rule(), None));
    rst.chain(drop).collect()
}

#[test]
fn all_lists_every_cause_once() {
    let rst: Vec<usize> = RstCause::ALL.iter().map(|&c| rst_index(c)).collect();
    assert_eq!(rst, (0..rst.len()).collect::<Vec<_>>(), "RstCause::ALL");
    let drop: Vec<usize> = DropCause::ALL.iter().map(|&c| drop_index(c)).collect();
    assert_eq!(drop, (0..drop.len()).collect::<Vec<_>>(), "DropCause::ALL");
}

#[test]
fn every_cited_rule_is_a_heading_of_the_model_document() {
    let doc = model_doc();
    let heads = headings(&doc);
    let mut missing = Vec::new();
    let mut checked = 0;
    for (name, rule, row) in all_causes() {
        let mut ids = cited_ids(rule);
        // "-": outside §7.
        if let Some(letter) = row.filter(|&l| l != "-") {
            ids.push(format!("§7 {letter}"));
        }
        for id in ids {
            checked += 1;
            if !has_heading(&heads, &id) {
                missing.push(format!("{name}: {id} (rule {rule:?})"));
            }
        }
    }
    assert!(
        checked > 24,
        "only {checked} ids found: is the parser broken?"
    );
    assert!(
        missing.is_empty(),
        "rules cited by causes but with no heading in docs/model.md:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_cause_cites_a_rule_or_is_named_in_the_document() {
    let doc = model_doc();
    for (name, rule, _) in all_causes() {
        assert!(
            doc.contains(&format!("`{name}`")),
            "cause `{name}` is not named in docs/model.md"
        );
        // Every cause, also those outside §7 (application_abort,
        // abort_on_data: §5.10), cites a § id.
        assert!(!cited_ids(rule).is_empty(), "cause `{name}` cites no § id");
    }
}

#[test]
fn the_parsers_read_the_forms_reports_print() {
    assert_eq!(cited_ids("§5.4 step 6 (aoo=1)"), ["§5.4 step 6"]);
    assert_eq!(cited_ids("§5.2 step 2 (§7 I)"), ["§5.2 step 2", "§7 I"]);
    assert_eq!(cited_ids("§5.4 (no target) + §5.5"), ["§5.4", "§5.5"]);
    assert_eq!(cited_ids("§5.3 (§7 C)"), ["§5.3", "§7 C"]);
    assert_eq!(cited_ids("§7 Id"), ["§7"]);
    let heads = headings("# §5.10 close\n### §5.4 step 10 x\nnot §5.1\n#nospace §5.1");
    assert_eq!(heads, ["§5.10 close", "§5.4 step 10 x"]);
    assert!(!has_heading(&heads, "§5.1"));
    assert!(!has_heading(&heads, "§5.4 step 1"));
    assert!(has_heading(&heads, "§5.10"));
    assert!(has_heading(&heads, "§5.4 step 10"));
}
