//! `ovm graph depends ARCH`: the packages and what each one needs (Buildroot's `graph-depends`), as
//! SVG drawn here and as Graphviz dot for whoever has `dot`.
//!
//! Three groups, as the engine builds them: the target packages (with the image, which holds every
//! one), the build tools, and the toolchain parts. Recipe dependencies stay inside a group; every
//! target package is built with the tools and the toolchain, which the picture says once rather
//! than with an arrow from each package.
//!
//! The layout is a plain layered one: a package's column is the length of the longest chain of
//! packages needing it, so every arrow points right (from a package to what it needs) and the
//! packages nothing needs (the image) are on the left; within a column, packages are ordered by
//! the mean position of their neighbours (a few sweeps of the barycentre heuristic), ties by name.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::layout::IMAGE;
use crate::recipe::{Kind, RecipeSet};

use super::svg::{self, Svg};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EdgeKind {
    /// `depends`: built against it (its staged output forms the sysroot).
    Depends,
    /// `replaces`: layered after it in the image, its files win.
    Replaces,
    /// The image holds the package.
    Holds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub version: String,
    /// `None`: the image.
    pub kind: Option<Kind>,
    /// Column in its group: 0 on the left.
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
}

/// One group of packages, laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub title: String,
    /// Indexes into `Depends::nodes`, column by column, each column top to bottom.
    pub columns: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Depends {
    pub arch: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub groups: Vec<Group>,
}

/// The graph of `recipes` for `arch`, laid out.
pub fn from_recipes(recipes: &RecipeSet, arch: &str) -> Depends {
    let mut d = Depends { arch: arch.into(), nodes: Vec::new(), edges: Vec::new(), groups: Vec::new() };
    let titles = [
        (Kind::Target, format!("{arch} packages (in the image)")),
        (Kind::Tools, "build tools (/ovm/tools, for every target package)".to_string()),
        (Kind::Native, "native tools (/ovm/native, for the packages that name them)".to_string()),
        (Kind::Toolchain, "toolchain parts (/ovm/toolchain, for every target package)".to_string()),
    ];
    for (kind, title) in titles {
        let first = d.nodes.len();
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        if kind == Kind::Target && recipes.of_kind(Kind::Target).next().is_some() {
            index.insert(IMAGE, d.nodes.len());
            d.nodes.push(Node { name: IMAGE.into(), version: String::new(), kind: None, column: 0 });
        }
        for r in recipes.of_kind(kind) {
            index.insert(r.name.as_str(), d.nodes.len());
            d.nodes.push(Node { name: r.name.clone(), version: r.version.clone(), kind: Some(kind), column: 0 });
        }
        if d.nodes.len() == first {
            continue;
        }
        for r in recipes.of_kind(kind) {
            let from = index[r.name.as_str()];
            for (list, edge) in [(&r.depends, EdgeKind::Depends), (&r.replaces, EdgeKind::Replaces)] {
                for dep in list {
                    if let Some(&to) = index.get(dep.as_str()) {
                        d.edges.push(Edge { from, to, kind: edge });
                    }
                }
            }
        }
        if let Some(&image) = index.get(IMAGE) {
            // The image holds every package; an arrow to those no other package needs is enough.
            let needed: Vec<usize> = d.edges.iter().map(|e| e.to).collect();
            for r in recipes.of_kind(Kind::Target) {
                let n = index[r.name.as_str()];
                if !needed.contains(&n) {
                    d.edges.push(Edge { from: image, to: n, kind: EdgeKind::Holds });
                }
            }
        }
        let members: Vec<usize> = (first..d.nodes.len()).collect();
        let columns = layer(&mut d, &members);
        d.groups.push(Group { title, columns });
    }
    d
}

/// Columns for `members` (see the module comment), ordered by barycentres.
fn layer(d: &mut Depends, members: &[usize]) -> Vec<Vec<usize>> {
    // Depth: 0 for a package nothing points to, else 1 + the deepest of those pointing to it (the
    // longest path from the left); cycles cannot occur (the recipes are validated) but are cut
    // rather than followed.
    fn visit(
        n: usize,
        ins: &dyn Fn(usize) -> Vec<usize>,
        depth: &mut BTreeMap<usize, usize>,
        active: &mut Vec<usize>,
    ) -> usize {
        if let Some(&h) = depth.get(&n) {
            return h;
        }
        if active.contains(&n) {
            return 0;
        }
        active.push(n);
        let h = ins(n).into_iter().map(|m| visit(m, ins, depth, active) + 1).max().unwrap_or(0);
        active.pop();
        depth.insert(n, h);
        h
    }
    let ins = |n: usize| d.edges.iter().filter(|e| e.to == n).map(|e| e.from).collect::<Vec<usize>>();
    let mut depth: BTreeMap<usize, usize> = BTreeMap::new();
    for &n in members {
        visit(n, &ins, &mut depth, &mut Vec::new());
    }
    let deepest = depth.values().copied().max().unwrap_or(0);
    let mut columns: Vec<Vec<usize>> = vec![Vec::new(); deepest + 1];
    for &n in members {
        d.nodes[n].column = depth[&n];
        columns[depth[&n]].push(n);
    }
    for col in &mut columns {
        col.sort_by(|a, b| d.nodes[*a].name.cmp(&d.nodes[*b].name));
    }
    // Barycentre sweeps: left to right by the positions of what points in, then right to left by
    // what each points to.
    let incoming = |e: &Edge, n: usize| (e.to == n).then_some(e.from);
    let outgoing = |e: &Edge, n: usize| (e.from == n).then_some(e.to);
    for _ in 0..4 {
        for c in 1..columns.len() {
            columns[c] = by_barycentre(d, &columns, c, &incoming);
        }
        for c in (0..columns.len().saturating_sub(1)).rev() {
            columns[c] = by_barycentre(d, &columns, c, &outgoing);
        }
    }
    columns
}

/// Column `c` reordered by the mean position of each node's neighbours (`neighbour` gives the
/// other end of an edge of the node, if it is one), a node without any keeping its place; ties by
/// name.
fn by_barycentre(
    d: &Depends,
    columns: &[Vec<usize>],
    c: usize,
    neighbour: &dyn Fn(&Edge, usize) -> Option<usize>,
) -> Vec<usize> {
    let position = |n: usize| columns.iter().find_map(|c| c.iter().position(|m| *m == n)).unwrap_or(0) as f64;
    let mut keys: Vec<(usize, f64)> = columns[c]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let at: Vec<f64> = d.edges.iter().filter_map(|e| neighbour(e, n)).map(position).collect();
            (n, if at.is_empty() { i as f64 } else { at.iter().sum::<f64>() / at.len() as f64 })
        })
        .collect();
    keys.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| d.nodes[a.0].name.cmp(&d.nodes[b.0].name)));
    keys.into_iter().map(|(n, _)| n).collect()
}

fn node_colour(n: &Node) -> (&'static str, &'static str) {
    match n.kind {
        None => ("#fde0dd", "#b2182b"),
        Some(Kind::Target) => ("#dceaf7", "#4e79a7"),
        Some(Kind::Tools) => ("#e3f1df", "#59a14f"),
        Some(Kind::Native) => ("#ece3f3", "#8e6bb0"),
        Some(Kind::Toolchain) => ("#fdebd6", "#f28e2b"),
    }
}

/// The picture.
pub fn svg(d: &Depends) -> String {
    const W_MIN: f64 = 1200.0;
    const NODE_H: f64 = 38.0;
    const V_GAP: f64 = 16.0;
    const H_GAP: f64 = 90.0;
    let node_w = d
        .nodes
        .iter()
        .map(|n| svg::text_width(&n.name, 13.0).max(svg::text_width(&n.version, 11.0)))
        .fold(0.0, f64::max)
        .clamp(90.0, 260.0)
        + 24.0;
    let widest = d.groups.iter().map(|g| g.columns.len()).max().unwrap_or(1) as f64;
    let width = (32.0 + 32.0 + widest * node_w + (widest - 1.0).max(0.0) * H_GAP).max(W_MIN);

    // Positions, group by group from the top.
    let mut pos: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    let mut boxes: Vec<(f64, f64, &str)> = Vec::new();
    let mut y = 70.0;
    for g in &d.groups {
        let tallest = g.columns.iter().map(Vec::len).max().unwrap_or(0) as f64;
        let h = 40.0 + tallest * NODE_H + (tallest - 1.0).max(0.0) * V_GAP + 20.0;
        boxes.push((y, h, &g.title));
        for (c, col) in g.columns.iter().enumerate() {
            // Shorter columns centred against the tallest.
            let offset = (tallest - col.len() as f64) * (NODE_H + V_GAP) / 2.0;
            for (i, &n) in col.iter().enumerate() {
                let x = 32.0 + c as f64 * (node_w + H_GAP);
                pos.insert(n, (x, y + 40.0 + offset + i as f64 * (NODE_H + V_GAP)));
            }
        }
        y += h + 24.0;
    }
    let height = y + 20.0;

    let title = format!("ovm dependency graph ({})", d.arch);
    let mut s = Svg::new(width, height, &title);
    s.raw(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
         orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#666\"/></marker>\
         <marker id=\"arrow-replaces\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
         orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#e15759\"/></marker></defs>",
    );
    s.text(16.0, 26.0, &title, "font-size=\"18\" font-weight=\"bold\" fill=\"#222\"");
    let packages = d.nodes.iter().filter(|n| n.kind.is_some()).count();
    let deps = d.edges.iter().filter(|e| e.kind == EdgeKind::Depends).count();
    s.text(
        16.0,
        46.0,
        &format!("{packages} packages, {deps} dependencies · an arrow points from a package to what it needs; dashed red: replaces files of"),
        "font-size=\"13\" fill=\"#444\"",
    );
    for (by, bh, t) in &boxes {
        s.rect(16.0, *by, width - 32.0, *bh, "#f7f7f7", "rx=\"8\" stroke=\"#ddd\"", None);
        s.text(28.0, by + 22.0, t, "font-size=\"13\" font-weight=\"bold\" fill=\"#555\"");
    }
    for e in &d.edges {
        let (Some(&(fx, fy)), Some(&(tx, ty))) = (pos.get(&e.from), pos.get(&e.to)) else { continue };
        let (ax, ay) = (fx + node_w, fy + NODE_H / 2.0);
        let (bx, by) = (tx, ty + NODE_H / 2.0);
        // A `replaces` between packages of one column: an arc on the right.
        let (c1, c2) = if bx > ax { ((ax + bx) / 2.0, (ax + bx) / 2.0) } else { (ax + 60.0, bx - 60.0) };
        let (bx, by) = if bx > ax { (bx, by) } else { (tx + node_w, by) };
        let style = match e.kind {
            EdgeKind::Depends => "stroke=\"#666\" stroke-width=\"1.4\" marker-end=\"url(#arrow)\"",
            EdgeKind::Holds => {
                "stroke=\"#b2182b\" stroke-opacity=\"0.6\" stroke-width=\"1.2\" marker-end=\"url(#arrow)\""
            }
            EdgeKind::Replaces => {
                "stroke=\"#e15759\" stroke-width=\"1.4\" stroke-dasharray=\"5,3\" marker-end=\"url(#arrow-replaces)\""
            }
        };
        let what = match e.kind {
            EdgeKind::Depends => "needs",
            EdgeKind::Holds => "holds",
            EdgeKind::Replaces => "replaces files of",
        };
        s.raw(&format!(
            "<path d=\"M{} {} C{} {} {} {} {} {}\" fill=\"none\" {style}><title>{}</title></path>",
            svg::num(ax),
            svg::num(ay),
            svg::num(c1),
            svg::num(ay),
            svg::num(if bx > ax { c2 } else { bx + 60.0 }),
            svg::num(by),
            svg::num(bx),
            svg::num(by),
            svg::esc(&format!("{} {what} {}", d.nodes[e.from].name, d.nodes[e.to].name))
        ));
    }
    for (n, &(x, y)) in &pos {
        let node = &d.nodes[*n];
        let (fill, stroke) = node_colour(node);
        let tip = match node.kind {
            None => format!("the {} image: every package above", d.arch),
            Some(k) => format!("{} {} ({k})", node.name, node.version),
        };
        s.rect(x, y, node_w, NODE_H, fill, &format!("rx=\"6\" stroke=\"{stroke}\" stroke-width=\"1.5\""), Some(&tip));
        let cx = x + node_w / 2.0;
        if node.version.is_empty() {
            s.text(
                cx,
                y + 24.0,
                &node.name,
                "font-size=\"13\" font-weight=\"bold\" fill=\"#222\" text-anchor=\"middle\"",
            );
        } else {
            let name = svg::fit(&node.name, node_w - 10.0, 13.0);
            s.text(cx, y + 17.0, &name, "font-size=\"13\" font-weight=\"bold\" fill=\"#222\" text-anchor=\"middle\"");
            let version = svg::fit(&node.version, node_w - 10.0, 11.0);
            s.text(cx, y + 31.0, &version, "font-size=\"11\" fill=\"#666\" text-anchor=\"middle\"");
        }
    }
    s.finish()
}

/// A dot string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The same graph as Graphviz dot (`dot -Tsvg depends.dot`), groups as clusters.
pub fn dot(d: &Depends) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&format!("ovm {}", d.arch)));
    out.push_str("  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\"];\n");
    out.push_str("  edge [color=\"#666666\"];\n");
    for (i, g) in d.groups.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{i} {{\n    label={};\n    style=\"rounded\";", quote(&g.title));
        for n in g.columns.iter().flatten() {
            let node = &d.nodes[*n];
            let (fill, stroke) = node_colour(node);
            let label =
                if node.version.is_empty() { node.name.clone() } else { format!("{}\\n{}", node.name, node.version) };
            // The label's `\n` is dot's line break: written after quoting, which would double it.
            let label = quote(&label).replace("\\\\n", "\\n");
            let _ = writeln!(
                out,
                "    {} [label={label}, fillcolor={}, color={}];",
                quote(&node_id(node)),
                quote(fill),
                quote(stroke)
            );
        }
        out.push_str("  }\n");
    }
    for e in &d.edges {
        let style = match e.kind {
            EdgeKind::Depends => "",
            EdgeKind::Holds => " [color=\"#b2182b\"]",
            EdgeKind::Replaces => " [style=dashed, color=\"#e15759\", label=\"replaces\"]",
        };
        let _ = writeln!(out, "  {} -> {}{style};", quote(&node_id(&d.nodes[e.from])), quote(&node_id(&d.nodes[e.to])));
    }
    out.push_str("}\n");
    out
}

/// A node's dot id: the image's cannot clash with a package (no recipe may be named `image`, and
/// the brackets are outside the names recipes allow).
fn node_id(n: &Node) -> String {
    match n.kind {
        None => format!("[{}]", n.name),
        Some(_) => n.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(d: &Depends, columns: &[Vec<usize>]) -> Vec<Vec<String>> {
        columns.iter().map(|c| c.iter().map(|n| d.nodes[*n].name.clone()).collect()).collect()
    }

    fn project(dir: &std::path::Path, recipes: &[(&str, &str, &str)]) -> RecipeSet {
        std::fs::create_dir_all(dir.join("config")).unwrap();
        std::fs::write(dir.join("config/ovm.toml"), "").unwrap();
        for (sub, name, extra) in recipes {
            let path = dir.join("recipes").join(sub).join(format!("{name}.toml"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(
                &path,
                format!(
                    "name = \"{name}\"\nversion = \"1.0\"\nlicense = \"MIT\"\n{extra}\n\
                     [[source]]\nurl = \"https://example.org/{name}.tar.gz\"\nsha256 = \"{zeros}\"\n\
                     [build]\nstyle = \"custom\"\ninstall = \"true\"\n",
                    zeros = "0".repeat(64)
                ),
            )
            .unwrap();
        }
        RecipeSet::load(&crate::project::Project::open(dir).unwrap()).unwrap()
    }

    #[test]
    fn packages_are_layered_by_what_they_need_and_written_as_dot() {
        let dir = tempfile::tempdir().unwrap();
        let recipes = project(
            dir.path(),
            &[
                ("", "hello", "depends = [\"libgreet\"]"),
                ("", "libgreet", "depends = [\"zlib\"]"),
                ("", "zlib", ""),
                ("", "bye", "replaces = [\"zlib\"]"),
                ("tools", "make", ""),
            ],
        );
        let d = from_recipes(&recipes, "x86_64");
        assert_eq!(d.groups.len(), 2, "no toolchain recipes, no toolchain group");
        assert_eq!(
            nodes(&d, &d.groups[0].columns),
            [vec!["image"], vec!["bye", "hello"], vec!["libgreet"], vec!["zlib"]]
        );
        assert_eq!(nodes(&d, &d.groups[1].columns), [vec!["make"]]);
        let dot = dot(&d);
        for line in [
            "\"[image]\" -> \"hello\" [color=\"#b2182b\"];",
            "\"hello\" -> \"libgreet\";",
            "\"bye\" -> \"zlib\" [style=dashed, color=\"#e15759\", label=\"replaces\"];",
            "\"zlib\" [label=\"zlib\\n1.0\"",
        ] {
            assert!(dot.contains(line), "no `{line}` in\n{dot}");
        }
        // image → bye too: nothing else needs bye (replacing is not needing).
        assert!(dot.contains("\"[image]\" -> \"bye\""), "{dot}");
        let picture = svg(&d);
        for name in ["hello", "libgreet", "zlib", "bye", "make"] {
            assert!(picture.contains(&format!(">{name}</text>")), "{name} is not drawn");
        }
        assert_eq!(picture, svg(&from_recipes(&recipes, "x86_64")));
    }

    #[test]
    fn dot_strings_are_quoted() {
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c d\"");
    }
}
