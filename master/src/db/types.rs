//! Column types that read and write the same way on SQLite, PostgreSQL and MySQL/MariaDB, so one
//! repository function serves all three and an existing GPT-Load database reads back unchanged.
//!
//! - [`DbI64`]: GORM's `uint` columns are `bigint unsigned` on MySQL, which sqlx's `i64` refuses.
//! - [`DbTime`]: GORM on SQLite stores times as text in Go's layout
//!   `2006-01-02 15:04:05.999999999-07:00` in local time; we write the same layout (local time, so
//!   text comparisons stay consistent with rows GPT-Load wrote) and read any common layout.
//!   PostgreSQL uses `timestamptz`, MySQL `datetime(3)` in UTC — the types GORM creates.
//! - [`DbJson`]: GORM's `datatypes.JSON` is `jsonb` on PostgreSQL, `json` on MySQL, text on SQLite.

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::mysql::{MySql, MySqlTypeInfo, MySqlValueRef};
use sqlx::postgres::{PgTypeInfo, PgValueRef, Postgres};
use sqlx::sqlite::{Sqlite, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Database, Decode, Encode, Type, TypeInfo, ValueRef};

/// An integer column, signed or unsigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DbI64(pub i64);

impl From<DbI64> for i64 {
    fn from(v: DbI64) -> i64 {
        v.0
    }
}

fn is_int_type(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n.contains("INT") || n == "BOOLEAN" || n == "NUMERIC" || n == "DECIMAL"
}

impl Type<Sqlite> for DbI64 {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty) || is_int_type(ty.name())
    }
}
impl<'q> Encode<'q, Sqlite> for DbI64 {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Sqlite>>::encode_by_ref(&self.0, buf)
    }
}
impl<'r> Decode<'r, Sqlite> for DbI64 {
    fn decode(v: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        <i64 as Decode<Sqlite>>::decode(v).map(DbI64)
    }
}

impl Type<Postgres> for DbI64 {
    fn type_info() -> PgTypeInfo {
        <i64 as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        matches!(ty.name(), "INT8" | "INT4" | "INT2")
    }
}
impl Encode<'_, Postgres> for DbI64 {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}
impl<'r> Decode<'r, Postgres> for DbI64 {
    fn decode(v: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let name = v.type_info().name().to_owned();
        match name.as_str() {
            "INT4" => <i32 as Decode<Postgres>>::decode(v).map(|x| DbI64(x.into())),
            "INT2" => <i16 as Decode<Postgres>>::decode(v).map(|x| DbI64(x.into())),
            _ => <i64 as Decode<Postgres>>::decode(v).map(DbI64),
        }
    }
}

impl Type<MySql> for DbI64 {
    fn type_info() -> MySqlTypeInfo {
        <i64 as Type<MySql>>::type_info()
    }
    fn compatible(ty: &MySqlTypeInfo) -> bool {
        is_int_type(ty.name())
    }
}
impl Encode<'_, MySql> for DbI64 {
    fn encode_by_ref(&self, buf: &mut Vec<u8>) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<MySql>>::encode_by_ref(&self.0, buf)
    }
}
impl<'r> Decode<'r, MySql> for DbI64 {
    fn decode(v: MySqlValueRef<'r>) -> Result<Self, BoxDynError> {
        if v.type_info().name().contains("UNSIGNED") {
            let u = <u64 as Decode<MySql>>::decode(v)?;
            return Ok(DbI64(i64::try_from(u)?));
        }
        <i64 as Decode<MySql>>::decode(v).map(DbI64)
    }
}

/// A boolean column: SQLite `numeric` 0/1 (as GORM writes it), MySQL `tinyint(1)`, PG `boolean`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DbBool(pub bool);

impl Type<Sqlite> for DbBool {
    fn type_info() -> SqliteTypeInfo {
        <bool as Type<Sqlite>>::type_info()
    }
    fn compatible(_ty: &SqliteTypeInfo) -> bool {
        true
    }
}
impl<'r> Decode<'r, Sqlite> for DbBool {
    fn decode(v: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<Sqlite>>::decode(v)?;
        Ok(DbBool(matches!(
            s.trim(),
            "1" | "true" | "TRUE" | "t" | "1.0"
        )))
    }
}
impl Type<Postgres> for DbBool {
    fn type_info() -> PgTypeInfo {
        <bool as Type<Postgres>>::type_info()
    }
}
impl<'r> Decode<'r, Postgres> for DbBool {
    fn decode(v: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <bool as Decode<Postgres>>::decode(v).map(DbBool)
    }
}
impl Type<MySql> for DbBool {
    fn type_info() -> MySqlTypeInfo {
        <bool as Type<MySql>>::type_info()
    }
    fn compatible(ty: &MySqlTypeInfo) -> bool {
        is_int_type(ty.name())
    }
}
impl<'r> Decode<'r, MySql> for DbBool {
    fn decode(v: MySqlValueRef<'r>) -> Result<Self, BoxDynError> {
        <i64 as Decode<MySql>>::decode(v).map(|i| DbBool(i != 0))
    }
}

/// A point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbTime(pub DateTime<Utc>);

impl From<DbTime> for DateTime<Utc> {
    fn from(v: DbTime) -> Self {
        v.0
    }
}

impl From<DateTime<Utc>> for DbTime {
    fn from(v: DateTime<Utc>) -> Self {
        Self(v)
    }
}

/// A time zone as Go's `time.Location` sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Utc,
    Named(chrono_tz::Tz),
    /// The process zone when its IANA name is unknown (formatted like Go's unnamed zones).
    Local,
}

impl Zone {
    /// The process's local zone: `TZ` if set, else the system zone.
    pub fn local() -> Self {
        let name = std::env::var("TZ")
            .ok()
            .map(|s| s.trim_start_matches(':').to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| iana_time_zone::get_timezone().ok());
        match name.as_deref() {
            Some("UTC") | Some("Etc/UTC") | Some("Z") => Zone::Utc,
            Some(n) => n
                .parse::<chrono_tz::Tz>()
                .map(Zone::Named)
                .unwrap_or(Zone::Local),
            None => Zone::Local,
        }
    }

    /// Go's `loc` DSN parameter: `UTC` (default), `Local`, or an IANA name.
    pub fn from_go_loc(loc: &str) -> Self {
        match loc {
            "" | "UTC" => Zone::Utc,
            "Local" => Zone::local(),
            n => n
                .parse::<chrono_tz::Tz>()
                .map(Zone::Named)
                .unwrap_or(Zone::Utc),
        }
    }

    /// Wall-clock time of an instant in this zone.
    pub fn naive(self, t: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Utc => t.naive_utc(),
            Zone::Named(tz) => t.with_timezone(&tz).naive_local(),
            Zone::Local => t.with_timezone(&Local).naive_local(),
        }
    }

    /// The instant of a wall-clock time in this zone (the earlier one when ambiguous).
    pub fn instant(self, n: NaiveDateTime) -> DateTime<Utc> {
        let pick = |r: chrono::LocalResult<DateTime<Utc>>| {
            r.earliest().unwrap_or_else(|| Utc.from_utc_datetime(&n))
        };
        match self {
            Zone::Utc => Utc.from_utc_datetime(&n),
            Zone::Named(tz) => pick(tz.from_local_datetime(&n).map(|t| t.with_timezone(&Utc))),
            Zone::Local => pick(Local.from_local_datetime(&n).map(|t| t.with_timezone(&Utc))),
        }
    }

    /// Go's `Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
    pub fn go_string(self, t: DateTime<Utc>) -> String {
        use chrono::{Datelike, Offset, Timelike};
        use chrono_tz::OffsetName;
        let named_offset = match self {
            Zone::Named(tz) => Some(*t.with_timezone(&tz).offset()),
            _ => None,
        };
        let (wall, off_secs, abbr): (NaiveDateTime, i32, Option<&str>) = match self {
            Zone::Utc => (t.naive_utc(), 0, Some("UTC")),
            Zone::Named(tz) => (
                t.with_timezone(&tz).naive_local(),
                named_offset.map_or(0, |o| o.fix().local_minus_utc()),
                named_offset.as_ref().and_then(|o| o.abbreviation()),
            ),
            Zone::Local => {
                let l = t.with_timezone(&Local);
                (l.naive_local(), l.offset().fix().local_minus_utc(), None)
            }
        };
        // Written byte by byte: this runs for every request-log row SQLite stores.
        let mut s: Vec<u8> = Vec::with_capacity(48);
        if wall.year() < 0 {
            s.push(b'-');
        }
        push_padded(&mut s, wall.year().unsigned_abs(), 4);
        s.push(b'-');
        push_padded(&mut s, wall.month(), 2);
        s.push(b'-');
        push_padded(&mut s, wall.day(), 2);
        s.push(b' ');
        push_padded(&mut s, wall.hour(), 2);
        s.push(b':');
        push_padded(&mut s, wall.minute(), 2);
        s.push(b':');
        push_padded(&mut s, wall.second(), 2);
        let nanos = wall.nanosecond() % 1_000_000_000;
        if nanos != 0 {
            s.push(b'.');
            let mut digits = nanos;
            let mut width = 9;
            while digits % 10 == 0 {
                digits /= 10;
                width -= 1;
            }
            push_padded(&mut s, digits, width);
        }
        s.push(b' ');
        let offset_at = s.len();
        s.push(if off_secs < 0 { b'-' } else { b'+' });
        let a = off_secs.unsigned_abs();
        push_padded(&mut s, a / 3600, 2);
        push_padded(&mut s, (a % 3600) / 60, 2);
        s.push(b' ');
        // Go prints the numeric offset again for zones without an abbreviation.
        match abbr {
            Some(a) => s.extend_from_slice(a.as_bytes()),
            None => s.extend_from_within(offset_at..offset_at + 5),
        }
        // ASCII digits and signs, and the zone's abbreviation (a `&str`): always UTF-8.
        String::from_utf8(s).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// Appends `v` in decimal, zero-padded to `width` digits (more when `v` needs them).
fn push_padded(s: &mut Vec<u8>, v: u32, width: usize) {
    // Most fields are two digits: no buffer and no copy for them.
    if width == 2 && v < 100 {
        s.push(b'0' + (v / 10) as u8);
        s.push(b'0' + (v % 10) as u8);
        return;
    }
    let mut buf = [b'0'; 10];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = i.min(buf.len().saturating_sub(width));
    s.extend_from_slice(&buf[start..]);
}

/// Zones fixed at start: SQLite text uses the process zone (as Go did); MySQL uses the DSN's `loc`.
static SQLITE_ZONE: std::sync::LazyLock<Zone> = std::sync::LazyLock::new(Zone::local);
static MYSQL_ZONE: std::sync::OnceLock<Zone> = std::sync::OnceLock::new();

/// Sets the zone MySQL DATETIME values are written and read in (from the DSN's `loc`); first call wins.
pub fn set_mysql_zone(z: Zone) {
    let _ = MYSQL_ZONE.set(z);
}

fn mysql_zone() -> Zone {
    MYSQL_ZONE.get().copied().unwrap_or(Zone::Utc)
}

impl DbTime {
    pub fn now() -> Self {
        Self(Utc::now())
    }

    /// The text GPT-Load's SQLite driver writes for this instant (Go's `Time.String()`, local zone).
    pub fn to_sqlite_text(self) -> String {
        SQLITE_ZONE.go_string(self.0)
    }

    /// Parses the layouts SQLite databases hold: Go's `Time.String()` (with or without a monotonic
    /// `m=+…` suffix), Go's SQLite fallbacks, RFC 3339, and unix seconds.
    pub fn parse_text(s: &str) -> Option<Self> {
        let mut s = s.trim();
        if let Some(i) = s.find(" m=") {
            s = &s[..i];
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(Self(t.with_timezone(&Utc)));
        }
        // Go's Time.String(): "2006-01-02 15:04:05.999999999 -0700 MST" — drop the abbreviation.
        let parts: Vec<&str> = s.split(' ').collect();
        if parts.len() >= 3 {
            let head = format!("{} {} {}", parts[0], parts[1], parts[2]);
            if let Ok(t) = DateTime::parse_from_str(&head, "%Y-%m-%d %H:%M:%S%.f %z") {
                return Some(Self(t.with_timezone(&Utc)));
            }
        }
        for f in [
            "%Y-%m-%d %H:%M:%S%.f%:z",
            "%Y-%m-%dT%H:%M:%S%.f%:z",
            "%Y-%m-%d %H:%M:%S%.f%z",
        ] {
            if let Ok(t) = DateTime::parse_from_str(s, f) {
                return Some(Self(t.with_timezone(&Utc)));
            }
        }
        let naive = s.trim_end_matches('Z');
        for f in [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M",
        ] {
            if let Ok(t) = NaiveDateTime::parse_from_str(naive, f) {
                return Some(Self(Utc.from_utc_datetime(&t)));
            }
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(naive, "%Y-%m-%d") {
            return d
                .and_hms_opt(0, 0, 0)
                .map(|t| Self(Utc.from_utc_datetime(&t)));
        }
        s.parse::<i64>()
            .ok()
            .and_then(|secs| Utc.timestamp_opt(secs, 0).single())
            .map(Self)
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(_ty: &SqliteTypeInfo) -> bool {
        true
    }
}
impl<'q> Encode<'q, Sqlite> for DbTime {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.to_sqlite_text(), buf)
    }
}
impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(v: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<Sqlite>>::decode(v)?;
        DbTime::parse_text(s).ok_or_else(|| format!("unrecognised time {s:?}").into())
    }
}

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        matches!(ty.name(), "TIMESTAMPTZ" | "TIMESTAMP")
    }
}
impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}
impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(v: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        if v.type_info().name() == "TIMESTAMP" {
            let n = <NaiveDateTime as Decode<Postgres>>::decode(v)?;
            return Ok(Self(Utc.from_utc_datetime(&n)));
        }
        <DateTime<Utc> as Decode<Postgres>>::decode(v).map(Self)
    }
}

impl Type<MySql> for DbTime {
    fn type_info() -> MySqlTypeInfo {
        <NaiveDateTime as Type<MySql>>::type_info()
    }
    fn compatible(ty: &MySqlTypeInfo) -> bool {
        matches!(ty.name(), "DATETIME" | "TIMESTAMP" | "DATE")
    }
}
impl Encode<'_, MySql> for DbTime {
    fn encode_by_ref(&self, buf: &mut Vec<u8>) -> Result<IsNull, BoxDynError> {
        <NaiveDateTime as Encode<MySql>>::encode(mysql_zone().naive(self.0), buf)
    }
}
impl<'r> Decode<'r, MySql> for DbTime {
    fn decode(v: MySqlValueRef<'r>) -> Result<Self, BoxDynError> {
        let n = <NaiveDateTime as Decode<MySql>>::decode(v)?;
        Ok(Self(mysql_zone().instant(n)))
    }
}

/// A JSON document held as text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbJson(pub String);

impl From<DbJson> for String {
    fn from(v: DbJson) -> String {
        v.0
    }
}

impl Type<Sqlite> for DbJson {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(_ty: &SqliteTypeInfo) -> bool {
        true
    }
}
impl<'q> Encode<'q, Sqlite> for DbJson {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0.clone(), buf)
    }
}
impl<'r> Decode<'r, Sqlite> for DbJson {
    fn decode(v: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        <String as Decode<Sqlite>>::decode(v).map(Self)
    }
}

impl Type<Postgres> for DbJson {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("JSONB")
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        matches!(ty.name(), "JSONB" | "JSON" | "TEXT" | "VARCHAR")
    }
}
impl Encode<'_, Postgres> for DbJson {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        let v: serde_json::Value = if self.0.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&self.0)?
        };
        <sqlx::types::Json<serde_json::Value> as Encode<Postgres>>::encode(
            sqlx::types::Json(v),
            buf,
        )
    }
}
impl<'r> Decode<'r, Postgres> for DbJson {
    fn decode(v: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match v.type_info().name() {
            "TEXT" | "VARCHAR" => <String as Decode<Postgres>>::decode(v).map(Self),
            _ => {
                let j = <sqlx::types::Json<Box<serde_json::value::RawValue>> as Decode<
                    Postgres,
                >>::decode(v)?;
                Ok(Self(j.0.get().to_owned()))
            }
        }
    }
}

impl Type<MySql> for DbJson {
    fn type_info() -> MySqlTypeInfo {
        <String as Type<MySql>>::type_info()
    }
    fn compatible(_ty: &MySqlTypeInfo) -> bool {
        true
    }
}
impl Encode<'_, MySql> for DbJson {
    fn encode_by_ref(&self, buf: &mut Vec<u8>) -> Result<IsNull, BoxDynError> {
        <String as Encode<MySql>>::encode_by_ref(&self.0, buf)
    }
}
impl<'r> Decode<'r, MySql> for DbJson {
    fn decode(v: MySqlValueRef<'r>) -> Result<Self, BoxDynError> {
        let bytes = <&[u8] as Decode<MySql>>::decode(v)?;
        Ok(Self(String::from_utf8(bytes.to_vec())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_string_layout_matches_go() {
        let t = Utc.with_ymd_and_hms(2025, 6, 1, 6, 23, 5).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(
            Zone::Utc.go_string(t),
            "2025-06-01 06:23:05.123456789 +0000 UTC"
        );
        let sh = Zone::Named(chrono_tz::Asia::Shanghai);
        assert_eq!(sh.go_string(t), "2025-06-01 14:23:05.123456789 +0800 CST");
        let hour = Utc.with_ymd_and_hms(2025, 6, 1, 6, 0, 0).unwrap();
        assert_eq!(sh.go_string(hour), "2025-06-01 14:00:00 +0800 CST");
        let half = hour + chrono::Duration::milliseconds(500);
        assert_eq!(Zone::Utc.go_string(half), "2025-06-01 06:00:00.5 +0000 UTC");
        let ny = Zone::Named(chrono_tz::America::New_York);
        assert_eq!(ny.go_string(hour), "2025-06-01 02:00:00 -0400 EDT");
        let early = Utc.with_ymd_and_hms(999, 1, 2, 3, 4, 5).unwrap()
            + chrono::Duration::nanoseconds(1_020);
        assert_eq!(
            Zone::Utc.go_string(early),
            "0999-01-02 03:04:05.00000102 +0000 UTC"
        );
        let bc = Utc.with_ymd_and_hms(-44, 3, 15, 0, 0, 0).unwrap();
        assert_eq!(Zone::Utc.go_string(bc), "-0044-03-15 00:00:00 +0000 UTC");
    }

    #[test]
    fn reads_every_layout_sqlite_databases_hold() {
        let t = Utc.with_ymd_and_hms(2025, 6, 1, 6, 23, 5).unwrap()
            + chrono::Duration::milliseconds(500);
        for text in [
            "2025-06-01 14:23:05.5 +0800 CST",
            "2025-06-01 14:23:05.5 +0800 CST m=+3.141592654",
            "2025-06-01 14:23:05.5 +0800 +0800",
            "2025-06-01 14:23:05.5+08:00",
            "2025-06-01T14:23:05.5+08:00",
            "2025-06-01T06:23:05.5Z",
            "2025-06-01 06:23:05.5",
        ] {
            assert_eq!(DbTime::parse_text(text), Some(DbTime(t)), "{text}");
        }
        assert_eq!(
            DbTime::parse_text("2025-06-01 06:23").unwrap().0,
            Utc.with_ymd_and_hms(2025, 6, 1, 6, 23, 0).unwrap()
        );
        assert!(DbTime::parse_text("2025-06-01").is_some());
        assert!(DbTime::parse_text("yesterday").is_none());
        let round = DbTime(t).to_sqlite_text();
        assert_eq!(DbTime::parse_text(&round), Some(DbTime(t)), "{round}");
    }

    #[test]
    fn mysql_wall_clock_zones() {
        let sh = Zone::from_go_loc("Asia/Shanghai");
        let t = Utc.with_ymd_and_hms(2025, 6, 1, 6, 0, 0).unwrap();
        let wall = sh.naive(t);
        assert_eq!(wall.to_string(), "2025-06-01 14:00:00");
        assert_eq!(sh.instant(wall), t);
        assert_eq!(Zone::from_go_loc(""), Zone::Utc);
        assert_eq!(Zone::from_go_loc("Not/AZone"), Zone::Utc);
    }
}
