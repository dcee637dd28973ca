//! Reconcile against the local server. Other tests create `osb_` objects
//! at the same time, so each check looks only at this test's names, and
//! only those are passed to `delete_orphans`.

mod postgresql_support;

use osb_broker::backends::postgresql::names::InstanceNames;
use osb_broker::backends::postgresql::reconcile::{delete_orphans, find_orphans, ServerObject};
use osb_broker::backends::postgresql::{KnownInstance, ReconcileReport};
use osbkit::Backend;
use postgresql_support::*;
use serde_json::json;

fn known(instance_id: &str) -> KnownInstance {
    KnownInstance {
        instance_id: instance_id.to_owned(),
        plan_id: SMALL_PLAN.to_owned(),
    }
}

fn names(report_objects: &[ServerObject]) -> Vec<String> {
    report_objects
        .iter()
        .map(|object| object.name.clone())
        .collect()
}

#[tokio::test]
async fn reconcile_finds_and_deletes_orphans() {
    let backend = backend().await;
    let admin = admin().await;
    let kept_instance = new_id();
    let _kept_instance_guard = guard(&kept_instance);
    let orphan_instance = new_id();
    let _orphan_instance_guard = guard(&orphan_instance);
    let missing_instance = new_id();
    let _missing_instance_guard = guard(&missing_instance);
    let kept_binding = new_id();
    let orphan_binding = new_id();
    let orphan_reader = new_id();
    for instance_id in [&kept_instance, &orphan_instance] {
        backend
            .provision(&provision_job(instance_id, SMALL_PLAN, json!({})))
            .await
            .expect("provision succeeds");
    }
    let kept_uri = bind_uri(
        &backend,
        &bind_job(&kept_instance, &kept_binding, SMALL_PLAN, json!({})),
    )
    .await;
    let orphan_uri = bind_uri(
        &backend,
        &bind_job(&kept_instance, &orphan_binding, SMALL_PLAN, json!({})),
    )
    .await;
    bind_uri(
        &backend,
        &bind_job(
            &orphan_instance,
            &orphan_reader,
            SMALL_PLAN,
            json!({"read_only": true}),
        ),
    )
    .await;
    // A table the orphan binding made outside the owner role must survive.
    let orphan_client = connect(&orphan_uri).await.expect("orphan binding connects");
    orphan_client
        .batch_execute("RESET ROLE; CREATE TABLE made_by_orphan (n int);")
        .await
        .expect("orphan binding creates a table");
    drop(orphan_client);

    let kept = InstanceNames::new(&kept_instance);
    let orphan = InstanceNames::new(&orphan_instance);
    let missing = InstanceNames::new(&missing_instance);
    let ours = [
        kept.database.clone(),
        kept.owner.clone(),
        kept.reader.clone(),
        kept.binding_role(&kept_binding),
        kept.binding_role(&orphan_binding),
        orphan.database.clone(),
        orphan.owner.clone(),
        orphan.reader.clone(),
        orphan.binding_role(&orphan_reader),
    ];

    let report = find_orphans(
        &backend,
        &[known(&kept_instance), known(&missing_instance)],
        std::slice::from_ref(&kept_binding),
    )
    .await
    .expect("find_orphans succeeds");
    let mut report = ReconcileReport {
        orphan_databases: report
            .orphan_databases
            .into_iter()
            .filter(|object| ours.contains(&object.name))
            .collect(),
        orphan_roles: report
            .orphan_roles
            .into_iter()
            .filter(|object| ours.contains(&object.name))
            .collect(),
        missing_databases: report
            .missing_databases
            .into_iter()
            .filter(|missing| missing.instance_id == missing_instance)
            .collect(),
    };
    report.orphan_roles.sort();

    assert_eq!(
        names(&report.orphan_databases),
        vec![orphan.database.clone()]
    );
    let mut expected_roles = vec![
        kept.binding_role(&orphan_binding),
        orphan.owner.clone(),
        orphan.reader.clone(),
        orphan.binding_role(&orphan_reader),
    ];
    expected_roles.sort();
    assert_eq!(names(&report.orphan_roles), expected_roles);
    assert_eq!(report.missing_databases.len(), 1);
    assert_eq!(report.missing_databases[0].database, missing.database);
    assert!(report
        .orphan_databases
        .iter()
        .all(|object| object.server == "default"));
    let text = report.to_string();
    assert!(text.contains(&orphan.database), "{text}");
    assert!(text.contains(&missing_instance), "{text}");

    let deleted = delete_orphans(&backend, &report)
        .await
        .expect("delete_orphans succeeds");
    assert_eq!(deleted.len(), 5, "{deleted:?}");
    assert_nothing_left(&admin, &orphan_instance).await;
    assert!(!role_exists(&admin, &kept.binding_role(&orphan_binding)).await);

    // The known instance and binding are untouched, and so is the table.
    assert!(database_exists(&admin, &kept.database).await);
    assert!(role_exists(&admin, &kept.binding_role(&kept_binding)).await);
    let kept_client = connect(&kept_uri).await.expect("kept binding connects");
    kept_client
        .query_one("SELECT count(*) FROM made_by_orphan", &[])
        .await
        .expect("the orphan binding's table survives");
    drop(kept_client);

    // A second pass finds none of this test's objects.
    let again = find_orphans(
        &backend,
        &[known(&kept_instance)],
        std::slice::from_ref(&kept_binding),
    )
    .await
    .expect("find_orphans succeeds");
    let left: Vec<&ServerObject> = again
        .orphan_databases
        .iter()
        .chain(&again.orphan_roles)
        .filter(|object| ours.contains(&object.name))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    cleanup(&backend, &kept_instance, SMALL_PLAN).await;
    assert_nothing_left(&admin, &kept_instance).await;
}
