//! The store side of `Session::update`: one compare-and-swap commit of a
//! namespace, and the reload after a conflict.

use super::baseline::Baseline;
use super::decode::decode_namespace;
use super::request::RequestSession;
use super::state::StoredSession;
use crate::data::SessionData;
use crate::error::UpdateError;
use crate::id::{RawId, SessionKey};
use crate::store::{Changeset, NamespaceChange, NamespaceOp, SaveMode, SaveOutcome, StoreError};

/// How a commit attempt ended.
pub(crate) enum Commit {
    /// Written, or nothing to write.
    Done,
    /// Another request wrote the namespace meanwhile: reload the session
    /// from where it was.
    Conflict { id: RawId, key: SessionKey },
}

/// Where a commit writes.
struct Target {
    id: RawId,
    key: SessionKey,
    mode: SaveMode,
    created_at: u64,
}

/// The stored session (moved to a fresh id when a `rotate_id` field
/// changed), or a new one; none after a failed load under fail-open: the
/// client's own session may exist, so nothing may be created in its place.
fn target(
    stored: Option<StoredSession>,
    rotate: bool,
    load_failed: bool,
    now: u64,
) -> Result<Target, UpdateError> {
    let new_id = || RawId::generate().map_err(StoreError::backend);
    Ok(match stored {
        Some(stored) if rotate => {
            let id = new_id()?;
            Target {
                key: id.key(),
                id,
                mode: SaveMode::Rename { from: stored.key },
                created_at: stored.created_at_ms,
            }
        }
        Some(stored) => Target {
            id: stored.id,
            key: stored.key,
            mode: SaveMode::Update,
            created_at: stored.created_at_ms,
        },
        None if load_failed => {
            return Err(UpdateError::Store(StoreError::unavailable(
                "the session could not be loaded, so nothing is saved in its place",
            )));
        }
        None => {
            let id = new_id()?;
            Target {
                key: id.key(),
                id,
                mode: SaveMode::Create,
                created_at: now,
            }
        }
    })
}

impl RequestSession {
    /// One compare-and-swap attempt of `value`'s changes.
    ///
    /// A change of a `rotate_id` field on a stored session moves the record
    /// to a fresh id in this same save: the old id never carries the new
    /// identity, not even for the rest of the handler.
    pub(crate) async fn commit<T: SessionData>(
        &self,
        value: &T,
        epoch: u64,
    ) -> Result<Commit, UpdateError> {
        let settings = self.settings();
        let now = settings.clock.now_ms();
        // Plan under the lock, then release it before any await.
        let plan = self.lock().plan_commit(value, epoch)?;
        let Some(op) = plan.diff.op else {
            return Ok(Commit::Done);
        };
        let removing = op == NamespaceOp::Remove;
        let change = NamespaceChange::new(T::NAMESPACE, plan.diff.version, Some(plan.revision), op);
        let source = plan.stored.as_ref().map(|s| (s.id.clone(), s.key));
        let Target {
            id,
            key,
            mode,
            created_at,
        } = target(plan.stored, plan.diff.rotate, plan.load_failed, now)?;
        let deadline = settings.expiry.write_deadline(created_at, now);
        let changeset = Changeset::new(mode, created_at, now, deadline, vec![change]);
        let outcome = self
            .storage()
            .save(&id, &key, &changeset, &settings.log_secret)
            .await?;
        match outcome {
            SaveOutcome::Saved { revisions } => {
                let committed = (!removing).then(|| {
                    (
                        plan.diff.current.unwrap_or_default(),
                        revisions.first().copied().unwrap_or_default(),
                    )
                });
                let stored = StoredSession {
                    id,
                    key,
                    created_at_ms: created_at,
                    last_seen_ms: now,
                    expires_at_ms: deadline,
                };
                self.lock().record_commit::<T>(committed, stored, mode);
                Ok(Commit::Done)
            }
            SaveOutcome::Deleted => {
                self.lock().record_emptied();
                Ok(Commit::Done)
            }
            SaveOutcome::Missing => Err(UpdateError::SessionGone),
            SaveOutcome::Conflict { .. } => {
                let (id, key) = source.unwrap_or((id, key));
                Ok(Commit::Conflict { id, key })
            }
        }
    }

    /// After a conflict: the namespace as stored now becomes both the value
    /// (returned) and the baseline.
    pub(crate) async fn reload<T: SessionData>(
        &self,
        key: &SessionKey,
        id: &RawId,
    ) -> Result<T, UpdateError> {
        let settings = self.settings();
        let Some(record) = self.storage().load(id, key, &settings.log_secret).await? else {
            return Err(UpdateError::SessionGone);
        };
        // Unreadable or newer data under the layer's policy: stop rather
        // than loop on data this code must not overwrite.
        let (stored_value, baseline) = decode_namespace::<T>(Some(&record), settings)?;
        let baseline = match baseline {
            Baseline::Loaded { namespaces, index } => Baseline::Computed {
                ns: namespaces[index].clone(),
                whole: false,
            },
            other => other,
        };
        self.lock().record_reloaded::<T>(baseline);
        Ok(stored_value)
    }
}
