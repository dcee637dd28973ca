//! The SQLite store's atomic steps, on a real database file.

use std::sync::Arc;

use osbkit::store::{
    BindBlocked, BindingRecord, BindingState, Completion, Created, InstanceRecord, InstanceState,
    Locked, OperationRecord, SqliteStore, Store, StoredJob,
};
use osbkit::types::OperationState;
use osbkit::OperationKind;

fn temp_store() -> (SqliteStore, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("osbkit-store-{}", uuid::Uuid::new_v4()));
    let path = dir.join("state.db");
    (SqliteStore::open(&path).expect("open a fresh store"), dir)
}

fn operation(
    id: &str,
    kind: OperationKind,
    instance_id: &str,
    binding_id: Option<&str>,
) -> OperationRecord {
    OperationRecord {
        id: id.to_owned(),
        kind,
        instance_id: instance_id.to_owned(),
        binding_id: binding_id.map(str::to_owned),
        state: OperationState::InProgress,
        description: None,
        asynchronous: true,
        job: StoredJob::default(),
        deadline: None,
        instance_usable: None,
        update_repeatable: None,
        created_at: 0,
    }
}

fn instance(id: &str, operation_id: &str) -> InstanceRecord {
    InstanceRecord {
        id: id.to_owned(),
        service_id: "service".to_owned(),
        plan_id: "plan".to_owned(),
        parameters: Default::default(),
        context: None,
        organization_guid: "org".to_owned(),
        space_guid: "space".to_owned(),
        maintenance_version: None,
        provision_request: serde_json::json!({"plan_id": "plan"}),
        dashboard_url: None,
        metadata: None,
        state: InstanceState::Provisioning,
        active_operation: Some(operation_id.to_owned()),
        created_by: operation_id.to_owned(),
    }
}

fn binding(id: &str, instance_id: &str, operation_id: &str) -> BindingRecord {
    BindingRecord {
        id: id.to_owned(),
        instance_id: instance_id.to_owned(),
        service_id: "service".to_owned(),
        plan_id: "plan".to_owned(),
        parameters: Default::default(),
        bind_request: serde_json::json!({}),
        state: BindingState::Binding,
        active_operation: Some(operation_id.to_owned()),
        sealed_response: None,
        created_by: operation_id.to_owned(),
    }
}

async fn provisioned(store: &SqliteStore, id: &str) {
    let op = operation(
        &format!("{id}-provision"),
        OperationKind::Provision,
        id,
        None,
    );
    store
        .create_instance(&instance(id, &op.id), &op)
        .await
        .unwrap();
    let ready = Completion::InstanceReady {
        dashboard_url: None,
        metadata: None,
    };
    assert!(store.finish(&op.id, &ready).await.unwrap());
}

#[tokio::test]
async fn racing_creates_insert_exactly_one() {
    let (store, dir) = temp_store();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for index in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let op = operation(&format!("op-{index}"), OperationKind::Provision, "i1", None);
            store
                .create_instance(&instance("i1", &op.id), &op)
                .await
                .unwrap()
        }));
    }
    let mut inserted = 0;
    for task in tasks {
        if task.await.unwrap() == Created::Inserted {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 1, "exactly one create wins");
    assert_eq!(
        store.all_instance_ids().await.unwrap(),
        vec!["i1".to_owned()]
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn locked_instance_reports_busy_operation() {
    let (store, dir) = temp_store();
    provisioned(&store, "i1").await;

    let update = operation("update-1", OperationKind::Update, "i1", None);
    let first = store
        .lock_instance(
            &update,
            &[InstanceState::Ready],
            InstanceState::Ready,
            false,
        )
        .await
        .unwrap();
    assert!(
        matches!(first, Locked::Acquired(_)),
        "the first lock is granted"
    );

    let delete = operation("delete-1", OperationKind::Deprovision, "i1", None);
    let second = store
        .lock_instance(
            &delete,
            &[InstanceState::Ready],
            InstanceState::Deprovisioning,
            true,
        )
        .await
        .unwrap();
    match second {
        Locked::Busy(active) => assert_eq!(active.id, "update-1"),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(
        store.operation("delete-1").await.unwrap().is_none(),
        "a refused lock writes no operation"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn finish_applies_once_and_releases_lock() {
    let (store, dir) = temp_store();
    provisioned(&store, "i1").await;

    let delete = operation("delete-1", OperationKind::Deprovision, "i1", None);
    store
        .lock_instance(
            &delete,
            &[InstanceState::Ready],
            InstanceState::Deprovisioning,
            true,
        )
        .await
        .unwrap();
    let failed = Completion::Failed {
        description: "server down".to_owned(),
        instance_usable: Some(true),
        update_repeatable: None,
    };
    assert!(store.finish("delete-1", &failed).await.unwrap());
    assert!(
        !store
            .finish("delete-1", &Completion::Deleted)
            .await
            .unwrap(),
        "an ended operation stays ended"
    );

    let instance = store
        .instance("i1")
        .await
        .unwrap()
        .expect("a failed delete keeps the instance");
    assert_eq!(instance.state, InstanceState::Ready);
    assert_eq!(instance.active_operation, None);
    let recorded = store.operation("delete-1").await.unwrap().unwrap();
    assert_eq!(recorded.state, OperationState::Failed);
    assert_eq!(recorded.description.as_deref(), Some("server down"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bind_blocked_while_instance_busy() {
    let (store, dir) = temp_store();
    let op = operation("provision-1", OperationKind::Provision, "i1", None);
    store
        .create_instance(&instance("i1", &op.id), &op)
        .await
        .unwrap();

    let bind = operation("bind-1", OperationKind::Bind, "i1", Some("b1"));
    let blocked = store
        .create_binding(&binding("b1", "i1", "bind-1"), &bind)
        .await
        .unwrap();
    assert_eq!(
        blocked,
        Err(BindBlocked::InstanceBusy(InstanceState::Provisioning))
    );

    let missing = store
        .create_binding(
            &binding("b2", "nope", "bind-2"),
            &operation("bind-2", OperationKind::Bind, "nope", Some("b2")),
        )
        .await
        .unwrap();
    assert_eq!(missing, Err(BindBlocked::InstanceNotFound));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn deprovision_removes_bindings_keeps_history() {
    let (store, dir) = temp_store();
    provisioned(&store, "i1").await;
    let bind = operation("bind-1", OperationKind::Bind, "i1", Some("b1"));
    store
        .create_binding(&binding("b1", "i1", "bind-1"), &bind)
        .await
        .unwrap()
        .unwrap();
    let sealed = Completion::BindingReady {
        sealed_response: vec![1, 2, 3],
    };
    store.finish("bind-1", &sealed).await.unwrap();

    let delete = operation("delete-1", OperationKind::Deprovision, "i1", None);
    store
        .lock_instance(
            &delete,
            &[InstanceState::Ready],
            InstanceState::Deprovisioning,
            true,
        )
        .await
        .unwrap();
    store
        .finish("delete-1", &Completion::Deleted)
        .await
        .unwrap();

    assert!(store.instance("i1").await.unwrap().is_none());
    assert!(store.binding("b1").await.unwrap().is_none());
    let latest = store.latest_operation("i1", None).await.unwrap().unwrap();
    assert_eq!(
        latest.id, "delete-1",
        "the delete stays readable for last_operation"
    );
    assert_eq!(latest.state, OperationState::Succeeded);
    assert!(
        store.operation("i1-provision").await.unwrap().is_none(),
        "older operations of a deleted instance are dropped"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn rejected_provision_leaves_no_record() {
    let (store, dir) = temp_store();
    let op = operation("provision-1", OperationKind::Provision, "i1", None);
    store
        .create_instance(&instance("i1", &op.id), &op)
        .await
        .unwrap();
    let rejected = Completion::Rejected {
        description: "bad parameters".to_owned(),
        instance_usable: None,
        update_repeatable: None,
    };
    store.finish("provision-1", &rejected).await.unwrap();
    assert!(store.instance("i1").await.unwrap().is_none());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn state_survives_reopening() {
    let (store, dir) = temp_store();
    provisioned(&store, "i1").await;
    let pending = operation("update-1", OperationKind::Update, "i1", None);
    store
        .lock_instance(
            &pending,
            &[InstanceState::Ready],
            InstanceState::Ready,
            false,
        )
        .await
        .unwrap();
    drop(store);

    let reopened = SqliteStore::open(&dir.join("state.db")).unwrap();
    let in_progress = reopened.operations_in_progress().await.unwrap();
    assert_eq!(in_progress.len(), 1);
    assert_eq!(in_progress[0].id, "update-1");
    let _ = std::fs::remove_dir_all(dir);
}
