//! The `properties` column of MQTT 5 streams, and the `mqtt_version` meta
//! value of every file.
//!
//! A stream with `mqtt-version: 5` writes files whose `data` table has a
//! sixth, nullable column `properties TEXT` (the message's MQTT 5
//! properties as a JSON object, NULL when it has none). Files of 3.1.1
//! streams keep the original five columns, so their readers see exactly
//! what they saw before; both kinds answer `select * from data`, and
//! `attic_meta` says which one a file is (`mqtt_version` = `3.1.1` or `5`).
//!
//! Owns: the column's DDL and the INSERT that fills it. Must not: build
//! the JSON (the MQTT 5 framing does) or decide which streams are v5.

use super::FileMeta;

/// Added to the schema of a file of an MQTT 5 stream, in the transaction
/// that creates it.
pub(super) const ADD_PROPERTIES_COLUMN: &str = "ALTER TABLE data ADD COLUMN properties TEXT";

/// The INSERT of an MQTT 5 stream's file (`?6` = properties or NULL).
pub(super) const INSERT_SQL_V5: &str = "INSERT INTO data \
(reception_timestamp, topic, payload, qos, retain, properties) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// The `mqtt_version` meta value.
pub(super) fn mqtt_version(meta: &FileMeta) -> &'static str {
    if meta.mqtt5 { "5" } else { "3.1.1" }
}
