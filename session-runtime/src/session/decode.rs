//! Turning a stored namespace into the schema's value, under the layer's
//! policies for data that does not decode or was written by newer code.

use std::sync::Arc;

use super::baseline::{Baseline, default_fields};
use super::held::Held;
use crate::codec::CodecError;
use crate::data::{DecodeError, FieldMap, SessionData};
use crate::error::{ErrorChain, SessionRejection};
use crate::settings::{DecodeFailurePolicy, NewerVersionPolicy, Settings};
use crate::store::{NamespaceRecord, Record};

/// Decodes `T` from the loaded record (`Default` when absent) and applies
/// the layer's policies; returns the value with its baseline.
pub(crate) fn decode_namespace<T: SessionData>(
    record: Option<&Record>,
    settings: &Settings,
) -> Result<(T, Baseline), SessionRejection> {
    let Some((index, ns)) = record.and_then(namespace_of::<T>) else {
        return Ok((T::default(), Baseline::Absent));
    };
    // A baseline computed here: the stored bytes are not at this version
    // (migrated) or not readable (reset), so a write replaces them whole;
    // it keeps the stored version, which a removal must name.
    let replacing = |fields: FieldMap| Baseline::Computed {
        ns: NamespaceRecord::new(ns.name.clone(), ns.version, ns.revision, fields),
        whole: true,
    };
    let unencodable = |source| SessionRejection::Undecodable {
        namespace: T::NAMESPACE,
        source: DecodeError::Field { field: "", source },
    };
    let reset = |err: &DecodeError| -> Result<(T, Baseline), SessionRejection> {
        tracing::warn!(target: crate::LOG_TARGET, namespace = T::NAMESPACE, error = %ErrorChain(err), "stored session namespace reset to its default");
        let fields = default_fields::<T>().map_err(unencodable)?.clone();
        Ok((T::default(), replacing(fields)))
    };
    match T::decode_fields(ns.version, &ns.fields).map_err(redact_values::<T>) {
        Ok(value) if ns.version == T::VERSION => Ok((
            value,
            Baseline::Loaded {
                namespaces: Arc::clone(&record.expect("found in the record").namespaces),
                index,
            },
        )),
        Ok(value) => {
            // Migrated in memory; the baseline is the migrated value, so only
            // a real change writes (at the new version, replacing the old fields).
            let fields = value.encode_fields().map_err(unencodable)?;
            Ok((value, replacing(fields)))
        }
        Err(err @ DecodeError::NewerVersion { .. }) => match settings.newer_version {
            NewerVersionPolicy::Reject => Err(SessionRejection::NewerVersion {
                namespace: T::NAMESPACE,
                source: err,
            }),
            NewerVersionPolicy::Reset => reset(&err),
        },
        Err(err) => match settings.decode_failure {
            DecodeFailurePolicy::Strict => Err(SessionRejection::Undecodable {
                namespace: T::NAMESPACE,
                source: err,
            }),
            DecodeFailurePolicy::Reset => reset(&err),
        },
    }
}

/// The decoded copy of `T` an earlier request published for the stored
/// namespace (`#[session(cached)]` schemas, stores that keep records in
/// memory); `None` sends the caller to [`decode_namespace`].
pub(crate) fn shared_namespace<T: SessionData>(
    record: Option<&Record>,
) -> Option<(Held<T>, Baseline)> {
    if !T::__CACHED {
        return None;
    }
    let record = record?;
    let (index, ns) = namespace_of::<T>(record)?;
    if ns.version != T::VERSION {
        return None;
    }
    let value = Held::shared(ns.fields.shared()?)?;
    Some((
        value,
        Baseline::Loaded {
            namespaces: Arc::clone(&record.namespaces),
            index,
        },
    ))
}

/// `T`'s namespace in `record`, with its index.
fn namespace_of<T: SessionData>(record: &Record) -> Option<(usize, &NamespaceRecord)> {
    record
        .namespaces
        .iter()
        .enumerate()
        .find(|(_, ns)| ns.name == T::NAMESPACE)
}

/// A codec's message can quote the stored bytes it failed on. It is kept
/// only for fields this schema knows and does not mark `sensitive`; for the
/// others (sensitive ones, and fields of older versions whose markings this
/// code cannot see) the value is redacted, so it never reaches a log.
pub(crate) fn redact_values<T: SessionData>(err: DecodeError) -> DecodeError {
    match err {
        DecodeError::Field { field, .. }
            if !T::FIELDS
                .iter()
                .any(|f| f.name() == field && !f.sensitive()) =>
        {
            DecodeError::Field {
                field,
                source: CodecError::decode(Redacted),
            }
        }
        other => other,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the stored value does not decode (detail redacted: the field may be sensitive)")]
struct Redacted;
