//! The dependency graph: a deterministic topological order, or the cycle that prevents one.
//!
//! Depth-first search with three colours. Roots are visited in name order and dependencies in the
//! order the recipe lists them (then the packages it `replaces`, which it must come after), so the
//! order (and the cycle reported) is the same on every run. A
//! grey node met again closes a cycle; the path on the DFS stack from that node is the cycle, and the
//! error points at the `depends` entry that closed it.

use std::collections::BTreeMap;

use super::validate::Loaded;
use super::RecipeError;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    New,
    /// On the current DFS path.
    Active,
    Done,
}

/// Names in dependency order. Every dependency is known to exist (checked before).
pub(super) fn topological_order(loaded: &[Loaded]) -> Result<Vec<String>, RecipeError> {
    let by_name: BTreeMap<&str, &Loaded> = loaded.iter().map(|l| (l.recipe.name.as_str(), l)).collect();
    let mut marks: BTreeMap<&str, Mark> = by_name.keys().map(|n| (*n, Mark::New)).collect();
    let mut order = Vec::with_capacity(loaded.len());

    for root in by_name.keys() {
        if marks[root] != Mark::New {
            continue;
        }
        // Explicit stack of (node, index of the next dependency to look at): recipes can form long
        // chains and a recursive walk would tie the depth to the thread's stack.
        let mut stack: Vec<(&str, usize)> = vec![(root, 0)];
        marks.insert(root, Mark::Active);
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            let l = by_name[node];
            // A replaced package is ordered like a dependency: the image layers the replacing
            // package after it.
            let edges = l.recipe.depends.iter().zip(&l.depends_at).chain(l.recipe.replaces.iter().zip(&l.replaces_at));
            if let Some((dep, at)) = edges.clone().nth(next) {
                top.1 += 1;
                let at = at.clone();
                let dep = dep.as_str();
                match marks.get(dep).copied() {
                    Some(Mark::New) => {
                        marks.insert(dep, Mark::Active);
                        stack.push((dep, 0));
                    }
                    Some(Mark::Active) => {
                        let start = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[start..].iter().map(|(n, _)| n.to_string()).collect();
                        cycle.push(dep.to_string());
                        return Err(RecipeError::Cycle { at, cycle });
                    }
                    Some(Mark::Done) | None => {}
                }
            } else {
                marks.insert(node, Mark::Done);
                order.push(node.to_string());
                stack.pop();
            }
        }
    }
    Ok(order)
}
