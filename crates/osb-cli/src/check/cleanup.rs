//! The instances and bindings the checks may have created, and their
//! removal at the end of the run, after Ctrl-C too.
//!
//! Every id is registered before the request that could create it is sent,
//! so a resource whose creation timed out, or that a broker created when it
//! should have rejected the request, is deleted as well. Deleting a
//! resource that was never created costs one request that gets 410.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{Call, Probe};
use super::poll::{self, Target as PollTarget};
use crate::client::Deadline;

/// An instance that may exist at the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRef {
    pub instance_id: String,
    pub service_id: String,
    pub plan_id: String,
}

impl InstanceRef {
    pub fn path(&self) -> Vec<String> {
        vec![
            "v2".into(),
            "service_instances".into(),
            self.instance_id.clone(),
        ]
    }
}

/// A binding that may exist at the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRef {
    pub instance: InstanceRef,
    pub binding_id: String,
}

impl BindingRef {
    pub fn path(&self) -> Vec<String> {
        let mut path = self.instance.path();
        path.push("service_bindings".into());
        path.push(self.binding_id.clone());
        path
    }
}

#[derive(Debug, Default)]
struct Registered {
    instances: Vec<InstanceRef>,
    bindings: Vec<BindingRef>,
}

/// The resources to delete, shared between the checks and the Ctrl-C handler.
#[derive(Debug, Clone, Default)]
pub struct Cleanup {
    registered: Arc<Mutex<Registered>>,
}

/// A resource that could not be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub description: String,
    pub reason: String,
}

impl Cleanup {
    pub fn add_instance(&self, instance: &InstanceRef) {
        let mut registered = self.lock();
        if !registered.instances.contains(instance) {
            registered.instances.push(instance.clone());
        }
    }

    pub fn add_binding(&self, binding: &BindingRef) {
        let mut registered = self.lock();
        if !registered.bindings.contains(binding) {
            registered.bindings.push(binding.clone());
        }
    }

    /// Forgets an instance that the broker confirmed deleted.
    pub fn remove_instance(&self, instance_id: &str) {
        self.lock()
            .instances
            .retain(|instance| instance.instance_id != instance_id);
    }

    /// Forgets a binding that the broker confirmed deleted.
    pub fn remove_binding(&self, binding_id: &str) {
        self.lock()
            .bindings
            .retain(|binding| binding.binding_id != binding_id);
    }

    pub fn is_empty(&self) -> bool {
        let registered = self.lock();
        registered.instances.is_empty() && registered.bindings.is_empty()
    }

    /// Describes each registered resource, bindings first.
    pub fn describe(&self) -> Vec<String> {
        let registered = self.lock();
        let bindings = registered.bindings.iter().map(|binding| {
            format!(
                "binding {} of instance {}",
                binding.binding_id, binding.instance.instance_id
            )
        });
        let instances = registered.instances.iter().map(|instance| {
            format!(
                "instance {} (service_id {}, plan_id {})",
                instance.instance_id, instance.service_id, instance.plan_id
            )
        });
        bindings.chain(instances).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registered> {
        // A panic while the lock was held leaves the lists valid.
        self.registered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Deletes every registered binding, then every registered instance,
    /// waiting up to `timeout` for each asynchronous delete. Returns what
    /// could not be deleted.
    pub async fn run(&self, probe: &Probe, timeout: Duration) -> Vec<Leftover> {
        let (bindings, instances) = {
            let registered = self.lock();
            (registered.bindings.clone(), registered.instances.clone())
        };
        let mut leftovers = Vec::new();
        for binding in bindings.iter().rev() {
            let call = Call::delete(binding.path())
                .query("service_id", &binding.instance.service_id)
                .query("plan_id", &binding.instance.plan_id);
            let target = PollTarget::Binding(binding.clone());
            match delete(probe, call, &target, timeout).await {
                Ok(()) => self.remove_binding(&binding.binding_id),
                Err(reason) => leftovers.push(Leftover {
                    description: format!(
                        "binding {} of instance {}",
                        binding.binding_id, binding.instance.instance_id
                    ),
                    reason,
                }),
            }
        }
        for instance in instances.iter().rev() {
            let call = Call::delete(instance.path())
                .query("service_id", &instance.service_id)
                .query("plan_id", &instance.plan_id);
            let target = PollTarget::Instance(instance.clone());
            match delete(probe, call, &target, timeout).await {
                Ok(()) => self.remove_instance(&instance.instance_id),
                Err(reason) => leftovers.push(Leftover {
                    description: format!(
                        "instance {} (service_id {}, plan_id {})",
                        instance.instance_id, instance.service_id, instance.plan_id
                    ),
                    reason,
                }),
            }
        }
        leftovers
    }
}

/// Sends a delete with `accepts_incomplete=true`, retries a few times while
/// the broker reports ConcurrencyError, and waits for an asynchronous delete.
async fn delete(
    probe: &Probe,
    call: Call,
    target: &PollTarget,
    timeout: Duration,
) -> Result<(), String> {
    let call = call.accepts_incomplete(true);
    let deadline = Deadline::after(timeout);
    // An operation of the checks may still be running on the resource.
    for _ in 0..30 {
        let reply = probe.send(&call).await;
        match reply.code() {
            200 | 410 => return Ok(()),
            202 => {
                let operation = poll::operation_of(&reply);
                let result = poll::wait(probe, target, operation.as_deref(), deadline, true).await;
                return match result.state.as_deref() {
                    Some("succeeded") | Some("gone") => Ok(()),
                    Some(state) => Err(format!("the delete ended in state {state:?}")),
                    None => Err(result.problems.join("; ")),
                };
            }
            422 if reply.error_code() == Some("ConcurrencyError") && !deadline.passed() => {
                tokio::time::sleep(Duration::from_secs(1).min(deadline.remaining())).await;
            }
            _ => return Err(format!("the broker responded {}", reply.summary())),
        }
    }
    Err("the broker kept responding 422 ConcurrencyError".into())
}
