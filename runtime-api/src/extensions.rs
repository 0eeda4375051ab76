//! Settings that only one driver understands, carried on a
//! [`ContainerDescription`](crate::ContainerDescription) without the shared
//! contract knowing their type: a typed map with at most one value per type.
//! The conmon driver keeps its monitor settings (pidfile, exit command,
//! sd-notify mode) here; another driver ignores them.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;

/// A value that can live in [`Extensions`].
trait Extension: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn Extension>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Send + Sync + Clone> Extension for T {
    fn clone_box(&self) -> Box<dyn Extension> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A typed map of driver-specific settings, one value per type.
///
/// ```
/// use runtime_api::Extensions;
/// #[derive(Clone, Debug, Default, PartialEq)]
/// struct MonitorSettings { verbose: bool }
///
/// let mut ext = Extensions::default();
/// assert_eq!(ext.get::<MonitorSettings>(), None);
/// ext.insert(MonitorSettings { verbose: true });
/// assert!(ext.get::<MonitorSettings>().unwrap().verbose);
/// ext.get_or_default::<MonitorSettings>().verbose = false;
/// assert_eq!(ext.get::<MonitorSettings>(), Some(&MonitorSettings { verbose: false }));
/// ```
#[derive(Default)]
pub struct Extensions {
    values: HashMap<TypeId, Box<dyn Extension>>,
}

impl Extensions {
    /// Stores `value`, returning the previous value of its type.
    pub fn insert<T: Any + Send + Sync + Clone>(&mut self, value: T) -> Option<T> {
        self.values
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| (*old).as_any().downcast_ref::<T>().cloned())
    }

    /// The value of type `T`, if one was stored.
    pub fn get<T: Any + Send + Sync + Clone>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| (**v).as_any().downcast_ref::<T>())
    }

    /// The value of type `T`, stored as `T::default()` first when absent.
    pub fn get_or_default<T: Any + Send + Sync + Clone + Default>(&mut self) -> &mut T {
        let entry = self
            .values
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()));
        (**entry)
            .as_any_mut()
            .downcast_mut::<T>()
            .expect("the entry for a TypeId holds a value of that type")
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Any + Send + Sync + Clone>(&mut self) -> Option<T> {
        self.values
            .remove(&TypeId::of::<T>())
            .and_then(|old| (*old).as_any().downcast_ref::<T>().cloned())
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl Clone for Extensions {
    fn clone(&self) -> Self {
        Self {
            values: self
                .values
                .iter()
                .map(|(k, v)| (*k, (**v).clone_box()))
                .collect(),
        }
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.values.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Default)]
    struct A(u32);
    #[derive(Clone, Debug, PartialEq)]
    struct B(&'static str);

    #[test]
    fn one_value_per_type_and_clones_are_deep() {
        let mut ext = Extensions::default();
        assert_eq!(ext.insert(A(1)), None);
        assert_eq!(ext.insert(A(2)), Some(A(1)));
        ext.insert(B("b"));
        assert_eq!(ext.len(), 2);
        let copy = ext.clone();
        ext.get_or_default::<A>().0 = 9;
        assert_eq!(copy.get::<A>(), Some(&A(2)));
        assert_eq!(ext.get::<A>(), Some(&A(9)));
        assert_eq!(ext.remove::<B>(), Some(B("b")));
        assert_eq!(ext.get::<B>(), None);
        assert!(!ext.is_empty());
    }
}
