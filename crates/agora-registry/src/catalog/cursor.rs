//! Opaque page cursors: the sort key and id of the last row, hex-encoded.

use agora_store::{SearchCursor, SearchSort};

use crate::error::RegistryError;

pub fn encode(cursor: &SearchCursor) -> String {
    let plain = match cursor {
        SearchCursor::Relevance { score, id } => format!("r|{score:?}|{id}"),
        SearchCursor::Downloads { downloads, id } => format!("d|{downloads}|{id}"),
        SearchCursor::Recent { updated_at, id } => format!("u|{updated_at}|{id}"),
        SearchCursor::Name { name, id } => format!("n|{name}|{id}"),
        SearchCursor::Rating { rank, id } => format!("s|{rank}|{id}"),
    };
    hex::encode(plain)
}

pub fn decode(cursor: &str, sort: SearchSort) -> Result<SearchCursor, RegistryError> {
    let bad = || {
        RegistryError::field(
            "cursor",
            "not a cursor this server issued",
            Some("the next_cursor value of the previous page, with the same sort"),
        )
    };
    if cursor.len() > 512 {
        return Err(bad());
    }
    let plain = String::from_utf8(hex::decode(cursor).map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = plain.splitn(3, '|');
    let (Some(kind), Some(key), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let id: i64 = id.parse().map_err(|_| bad())?;
    let int = || key.parse::<i64>().map_err(|_| bad());
    let decoded = match (kind, sort) {
        // The server's scores are finite: a NaN or infinite one was never issued (and NaN
        // would not even equal itself when read back).
        ("r", SearchSort::Relevance) => SearchCursor::Relevance {
            score: key
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite())
                .ok_or_else(bad)?,
            id,
        },
        ("d", SearchSort::Downloads) => SearchCursor::Downloads {
            downloads: int()?,
            id,
        },
        ("u", SearchSort::Recent) => SearchCursor::Recent {
            updated_at: int()?,
            id,
        },
        ("n", SearchSort::Name) => SearchCursor::Name {
            name: key.to_owned(),
            id,
        },
        ("s", SearchSort::Rating) => SearchCursor::Rating { rank: int()?, id },
        _ => return Err(bad()),
    };
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_must_match_the_sort() {
        for (c, sort) in [
            (
                SearchCursor::Relevance {
                    score: -1.234_567_890_123,
                    id: 7,
                },
                SearchSort::Relevance,
            ),
            (
                SearchCursor::Downloads {
                    downloads: 42,
                    id: 1,
                },
                SearchSort::Downloads,
            ),
            (
                SearchCursor::Name {
                    name: "jira".into(),
                    id: 3,
                },
                SearchSort::Name,
            ),
        ] {
            assert_eq!(decode(&encode(&c), sort).unwrap(), c);
            assert!(decode(&encode(&c), SearchSort::Recent).is_err());
        }
        assert!(decode("zz", SearchSort::Name).is_err());
        for score in ["NaN", "inf", "-infinity"] {
            let c = hex::encode(format!("r|{score}|7"));
            assert!(decode(&c, SearchSort::Relevance).is_err(), "{score}");
        }
        assert!(decode(&hex::encode("n|x"), SearchSort::Name).is_err());
    }
}
