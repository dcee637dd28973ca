//! A burst of operations larger than the server's connection limit.

mod postgresql_support;

use std::sync::Arc;

use osbkit::Backend;
use postgresql_support::*;
use serde_json::json;

/// More provisions at once than PostgreSQL's default `max_connections` of 100
/// allows connections, since each provision uses two.
const BURST: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_provisions_all_succeed() {
    let backend = Arc::new(backend().await);
    let plan_id = plans()[0].0.clone();
    let ids: Vec<String> = (0..BURST).map(|_| new_id()).collect();
    let _guards: Vec<_> = ids.iter().map(|id| guard(id)).collect();

    let mut tasks = Vec::new();
    for id in &ids {
        let backend = backend.clone();
        let job = provision_job(id, &plan_id, json!({}));
        tasks.push(tokio::spawn(async move { backend.provision(&job).await }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(error) = task.await.expect("the provision task ends") {
            failures.push(error.public_description());
        }
    }

    let mut deletions = Vec::new();
    for id in &ids {
        let backend = backend.clone();
        let job = deprovision_job(id, &plan_id, &[]);
        deletions.push(tokio::spawn(async move { backend.deprovision(&job).await }));
    }
    for deletion in deletions {
        deletion
            .await
            .expect("the deprovision task ends")
            .expect("every deprovision succeeds");
    }
    assert!(
        failures.is_empty(),
        "{} of {BURST} provisions failed, first: {:?}",
        failures.len(),
        failures.first()
    );
    let admin = admin().await;
    for id in &ids {
        assert_nothing_left(&admin, id).await;
    }
}
