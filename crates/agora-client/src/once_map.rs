//! A bounded map of values each fetched once, however many tasks ask for it at the same
//! time: what one install keeps of the registry's answers (publishers' keys, log proofs).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

pub(crate) struct OnceMap<K, V> {
    cells: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
    limit: usize,
}

impl<K: Eq + Hash, V: Clone> OnceMap<K, V> {
    /// Keeps the values of at most `limit` keys.
    pub(crate) fn new(limit: usize) -> OnceMap<K, V> {
        OnceMap {
            cells: Mutex::new(HashMap::new()),
            limit,
        }
    }

    /// The value for `key`: made by `init` the first time (tasks asking meanwhile wait for
    /// it; after a failure the next one tries again). Past `limit` keys, a new key's value
    /// is made every time it is asked for, and not kept.
    pub(crate) async fn get_or_try_init<E, F, Fut>(&self, key: K, init: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            match cells.get(&key) {
                Some(cell) => Arc::clone(cell),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    if cells.len() < self.limit {
                        cells.insert(key, Arc::clone(&cell));
                    }
                    cell
                }
            }
        };
        cell.get_or_try_init(init).await.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn each_kept_value_is_made_once_and_the_bound_holds() {
        let map = OnceMap::new(2);
        let made = AtomicUsize::new(0);
        let make = |v: u32| {
            let made = &made;
            move || async move {
                made.fetch_add(1, Ordering::Relaxed);
                Ok::<_, ()>(v)
            }
        };
        let both = futures_util::future::join(
            map.get_or_try_init(1, make(10)),
            map.get_or_try_init(1, make(11)),
        )
        .await;
        assert_eq!(both, (Ok(10), Ok(10)));
        assert_eq!(made.load(Ordering::Relaxed), 1, "asked together, made once");
        assert_eq!(map.get_or_try_init(2, make(20)).await, Ok(20));
        // A third key is past the bound: made each time, never kept.
        assert_eq!(map.get_or_try_init(3, make(30)).await, Ok(30));
        assert_eq!(map.get_or_try_init(3, make(31)).await, Ok(31));
        assert_eq!(made.load(Ordering::Relaxed), 4);
        assert_eq!(map.cells.lock().unwrap().len(), 2);
        // A failure is not kept.
        let failing = OnceMap::new(1);
        assert_eq!(
            failing
                .get_or_try_init(1, || async { Err::<u32, _>("no") })
                .await,
            Err("no")
        );
        assert_eq!(failing.get_or_try_init(1, make(5)).await, Ok(5));
    }
}
