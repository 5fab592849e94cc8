//! Page cursors: an opaque token naming the last event of a page by its position in the timeline.
//!
//! The timeline is ordered by `(occurred_at, seq)`, which is unique within an organisation, so "strictly
//! after this pair" (or before, newest first) resumes a listing with no duplicate and no skip however many
//! events arrive meanwhile. The token also records the direction, so a cursor cannot be replayed with the
//! other order by mistake.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Which end of the timeline a listing starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Newest first: the default.
    #[default]
    Desc,
    Asc,
}

impl Order {
    pub fn parse(s: &str) -> Option<Order> {
        match s {
            "desc" => Some(Order::Desc),
            "asc" => Some(Order::Asc),
            _ => None,
        }
    }
}

/// The position of the last event a page returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub order: Order,
    pub occurred_at: i64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("is not a cursor this service issued; pass `next_cursor` from a previous page unchanged")]
    Malformed,
    #[error("was issued for the other order; keep `order` the same while paging")]
    WrongOrder,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let dir = match self.order {
            Order::Desc => 'd',
            Order::Asc => 'a',
        };
        URL_SAFE_NO_PAD.encode(format!("1{dir}{}:{}", self.occurred_at, self.seq))
    }

    pub fn decode(token: &str, order: Order) -> Result<Cursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| CursorError::Malformed)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| CursorError::Malformed)?;
        let rest = text.strip_prefix('1').ok_or(CursorError::Malformed)?;
        let (found, rest) = match rest.as_bytes().first() {
            Some(b'd') => (Order::Desc, &rest[1..]),
            Some(b'a') => (Order::Asc, &rest[1..]),
            _ => return Err(CursorError::Malformed),
        };
        let (t, s) = rest.split_once(':').ok_or(CursorError::Malformed)?;
        let cursor = Cursor {
            order: found,
            occurred_at: t.parse().map_err(|_| CursorError::Malformed)?,
            seq: s.parse().map_err(|_| CursorError::Malformed)?,
        };
        // The service's seqs are SQL integers: a larger one was never issued.
        if cursor.seq > i64::MAX as u64 {
            return Err(CursorError::Malformed);
        }
        if found != order {
            return Err(CursorError::WrongOrder);
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        let c = Cursor { order: Order::Desc, occurred_at: -5, seq: 42 };
        assert_eq!(Cursor::decode(&c.encode(), Order::Desc), Ok(c));
        assert_eq!(Cursor::decode(&c.encode(), Order::Asc), Err(CursorError::WrongOrder));
        assert_eq!(Cursor::decode("not a cursor", Order::Desc), Err(CursorError::Malformed));
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("1dx:1"), Order::Desc), Err(CursorError::Malformed));
        // A seq no SQL integer holds was never issued.
        let beyond = URL_SAFE_NO_PAD.encode(format!("1d5:{}", i64::MAX as u64 + 1));
        assert_eq!(Cursor::decode(&beyond, Order::Desc), Err(CursorError::Malformed));
    }
}
