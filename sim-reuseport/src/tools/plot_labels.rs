//! Placement of the timeline's action labels on a chart, so that no label
//! hides another: labels of one instant are merged (`listen new-0, new-1`),
//! then each label takes the lowest row where it overlaps no other, and the
//! panel keeps that many rows of headroom above its data, so no label
//! hides the data either.

use crate::plot::Marker;

/// Approximate width of one character of the 12 px label font (SVG gives
/// no font metrics; generous, so that real text fits).
pub const CHAR_W: f64 = 6.8;
/// Height of one row of labels, in pixels.
pub const ROW_H: i32 = 14;

/// A label as drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    /// Where its line is, and its text.
    pub marker: Marker,
    /// Row from the top (0 = the top row).
    pub row: usize,
    /// Drawn left of its line (near the right edge).
    pub left: bool,
}

/// A verb and the objects it applies to (`listen`, `[new-0, new-1]`).
type VerbGroup = (String, Vec<String>);

/// Labels at the same instant merged into one, their steps grouped by verb:
/// `listen new-0`, `listen new-1` and `stop_accepting old-0` at 2 s become
/// `listen new-0, new-1; stop_accepting old-0`.
pub fn merge(markers: &[&Marker]) -> Vec<Marker> {
    let mut out: Vec<(f64, Vec<VerbGroup>)> = Vec::new();
    for m in markers {
        let (verb, rest) = match m.label.split_once(' ') {
            Some((v, r)) => (v.to_string(), r.to_string()),
            None => (m.label.clone(), String::new()),
        };
        let i = match out.iter().position(|(t, _)| *t == m.at_s) {
            Some(i) => i,
            None => {
                out.push((m.at_s, Vec::new()));
                out.len() - 1
            }
        };
        let groups = &mut out[i].1;
        match groups.iter_mut().find(|(v, _)| *v == verb) {
            Some((_, objs)) if !rest.is_empty() => objs.push(rest),
            Some(_) => {}
            None => groups.push((verb, if rest.is_empty() { vec![] } else { vec![rest] })),
        }
    }
    out.into_iter()
        .map(|(at_s, groups)| Marker {
            at_s,
            label: groups
                .into_iter()
                .map(|(v, objs)| {
                    if objs.is_empty() {
                        v
                    } else {
                        format!("{v} {}", objs.join(", "))
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect()
}

/// Rows for `labels` on a plot `width_px` wide showing `x_min..x_max`:
/// in time order, each label takes the lowest row where its box overlaps
/// no box already placed. Returns the labels and the number of rows.
pub fn place(labels: Vec<Marker>, x_min: f64, x_max: f64, width_px: f64) -> (Vec<Placed>, usize) {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| labels[a].at_s.total_cmp(&labels[b].at_s));
    let mut rows: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut placed: Vec<Option<Placed>> = vec![None; labels.len()];
    for i in order {
        let m = &labels[i];
        let x = (m.at_s - x_min) / (x_max - x_min) * width_px;
        let w = m.label.chars().count() as f64 * CHAR_W + 8.0;
        let left = x + w > width_px;
        let span = if left { (x - w, x) } else { (x, x + w) };
        let free = |row: &Vec<(f64, f64)>| row.iter().all(|&(a, b)| span.1 < a || span.0 > b);
        let row = match rows.iter().position(free) {
            Some(r) => r,
            None => {
                rows.push(Vec::new());
                rows.len() - 1
            }
        };
        rows[row].push(span);
        placed[i] = Some(Placed {
            marker: m.clone(),
            row,
            left,
        });
    }
    (
        placed.into_iter().map(|p| p.expect("placed")).collect(),
        rows.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(at_s: f64, label: &str) -> Marker {
        Marker {
            at_s,
            label: label.into(),
        }
    }

    #[test]
    fn same_instant_labels_merge_by_verb() {
        let ms = [
            m(2.0, "listen new-0"),
            m(2.0, "listen new-1"),
            m(2.0, "stop_accepting old-0"),
            m(2.5, "close old-0"),
        ];
        let refs: Vec<&Marker> = ms.iter().collect();
        let merged = merge(&refs);
        assert_eq!(
            merged,
            vec![
                m(2.0, "listen new-0, new-1; stop_accepting old-0"),
                m(2.5, "close old-0")
            ]
        );
    }

    #[test]
    fn no_two_labels_overlap() {
        // 16 labels 50 ms apart on a 10 s axis 940 px wide: 4.7 px apart.
        let labels: Vec<Marker> = (0..16)
            .map(|i| m(2.0 + 0.05 * i as f64, &format!("close old-{i}")))
            .collect();
        let (placed, rows) = place(labels, 0.0, 10.0, 940.0);
        assert!(rows > 1);
        for (i, a) in placed.iter().enumerate() {
            for b in &placed[i + 1..] {
                if a.row != b.row {
                    continue;
                }
                let span = |p: &Placed| {
                    let x = p.marker.at_s / 10.0 * 940.0;
                    let w = p.marker.label.chars().count() as f64 * CHAR_W + 8.0;
                    if p.left {
                        (x - w, x)
                    } else {
                        (x, x + w)
                    }
                };
                let (sa, sb) = (span(a), span(b));
                assert!(sa.1 < sb.0 || sb.1 < sa.0, "{a:?} overlaps {b:?}");
            }
        }
        // Near the right edge a label goes left of its line.
        let (placed, _) = place(vec![m(9.9, "close old-0")], 0.0, 10.0, 940.0);
        assert!(placed[0].left);
    }
}
