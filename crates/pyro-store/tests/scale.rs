//! A store with 10,000 workspaces: `list` stays a query.

mod common;

use std::time::Instant;

use common::{labels, open};
use pyro_store::{LabelFilter, ListQuery};

#[test]
fn ten_thousand_workspaces_list_a_page_and_all() {
    let (_d, s) = open();
    let now = 1_000_000.0;
    let t = Instant::now();
    s.bulk_insert_for_bench(10_000, now).unwrap();
    let fill = t.elapsed();

    let t = Instant::now();
    let page = s
        .list(&ListQuery {
            limit: Some(20),
            ..Default::default()
        })
        .unwrap();
    let page_time = t.elapsed();
    // Workspace i was last active at now - i: the page is 0..20, in order.
    let want: Vec<String> = (0..20).map(|i| format!("bench-{i}")).collect();
    let got: Vec<String> = page.iter().map(|w| w.name.clone().unwrap()).collect();
    assert_eq!(got, want);
    for (i, w) in page.iter().enumerate() {
        assert_eq!(w.last_activity_at, now - i as f64);
        assert_eq!(
            w.labels,
            labels(&[("bench", "yes"), ("team", &format!("t{}", i % 10))])
        );
    }

    let t = Instant::now();
    let all = s.list(&ListQuery::default()).unwrap();
    let all_time = t.elapsed();
    assert_eq!(all.len(), 10_000);
    assert!(all
        .windows(2)
        .all(|p| p[0].last_activity_at > p[1].last_activity_at));
    assert_eq!(all[9_999].name.as_deref(), Some("bench-9999"));
    assert!(all.iter().all(|w| w.labels.len() == 2));

    let t = Instant::now();
    let team = s
        .list(&ListQuery {
            labels: vec![LabelFilter::parse("team=t3").unwrap()],
            limit: Some(20),
            ..Default::default()
        })
        .unwrap();
    let filter_time = t.elapsed();
    let want: Vec<String> = (0..20).map(|i| format!("bench-{}", 3 + 10 * i)).collect();
    let got: Vec<String> = team.iter().map(|w| w.name.clone().unwrap()).collect();
    assert_eq!(got, want);
    let t = Instant::now();
    let team_all = s
        .list(&ListQuery {
            labels: vec![LabelFilter::parse("team=t3").unwrap()],
            ..Default::default()
        })
        .unwrap();
    let filter_all_time = t.elapsed();
    assert_eq!(team_all.len(), 1_000);

    let t = Instant::now();
    let one = s.resolve("bench-5000").unwrap();
    let resolve_time = t.elapsed();
    assert_eq!(one.last_activity_at, now - 5000.0);

    eprintln!(
        "10k store: fill {fill:?} (one transaction); list --limit 20 {page_time:?}; \
         full list {all_time:?}; --label team=t3 --limit 20 {filter_time:?}; \
         --label team=t3 (1000 rows) {filter_all_time:?}; resolve by name {resolve_time:?}"
    );
}
