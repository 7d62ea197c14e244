//! Binary targets. Row `r`'s label is the event at row `r + horizon`: a 0/1
//! column shifted up, or, from a price column, whether the future return
//! `close[r+h]/close[r] - 1` beats `tau = k * sigma * sqrt(h)` (clipped to
//! `[tau_min, tau_max]`, `sigma` the rolling std of log returns over the last
//! `vol_window` rows). Rows whose future is not in the file get no label.

use crate::table::{clip, Column, Table};
use recur_core::config::TargetConfig;
use recur_core::{Error, Result};

/// Which column holds the target, for error messages and feature exclusion.
pub fn target_column(cfg: &TargetConfig) -> Option<&str> {
    cfg.column.as_deref().or(cfg.price_column.as_deref())
}

/// Per-row labels (`None` where the future is unknown or neutral-dropped).
pub fn row_labels(t: &Table, cfg: &TargetConfig) -> Result<Vec<Option<f32>>> {
    let n = t.n_rows();
    let h = cfg.horizon;
    if let Some(col) = &cfg.column {
        let y = t.finite(col)?;
        if let Some(i) = y.iter().position(|v| *v != 0.0 && *v != 1.0) {
            return Err(Error::data(
                &t.source,
                format!(
                    "target column `{col}` must be binary (0 or 1): {} holds {}. \
                     For a price, set data.target.price_column instead",
                    t.row_name(i),
                    y[i]
                ),
            ));
        }
        return Ok((0..n)
            .map(|r| (h < n - r).then(|| y[r + h] as f32))
            .collect());
    }
    if let Some(col) = &cfg.price_column {
        let p = t.finite(col)?;
        if let Some(i) = p.iter().position(|v| *v <= 0.0) {
            return Err(Error::data(
                &t.source,
                format!(
                    "price column `{col}`: {} holds {}, prices must be positive",
                    t.row_name(i),
                    p[i]
                ),
            ));
        }
        return Ok(price_labels(p, cfg));
    }
    Err(Error::config(
        "data.target",
        "name the label with `column` (a 0/1 column) or `price_column` (a price to derive up/down labels from)",
    ))
}

/// [`row_labels`] for a file to score: an empty cell of a 0/1 target
/// column (a label not known yet, as in a live file's newest rows) gives
/// its row no label, as the rows past the file's end have, where training
/// refuses it. Price targets stay strict: a missing price would change its
/// neighbours' volatility, and so their labels.
pub fn scored_row_labels(t: &Table, cfg: &TargetConfig) -> Result<Vec<Option<f32>>> {
    let Some(col) = &cfg.column else {
        return row_labels(t, cfg);
    };
    let y = match t.column(col)? {
        Column::Numeric(y) if y.iter().any(|v| v.is_nan()) => y,
        _ => return row_labels(t, cfg),
    };
    if let Some(i) = y.iter().position(|v| !v.is_nan() && *v != 0.0 && *v != 1.0) {
        return Err(Error::data(
            &t.source,
            format!(
                "target column `{col}` must be binary (0 or 1, or empty where the label is \
                 not known yet): {} holds {}",
                t.row_name(i),
                y[i]
            ),
        ));
    }
    let (n, h) = (y.len(), cfg.horizon);
    Ok((0..n)
        .map(|r| {
            r.checked_add(h)
                .and_then(|i| y.get(i))
                .filter(|v| !v.is_nan())
                .map(|&v| v as f32)
        })
        .collect())
}

/// Labels from prices; see the module doc for the rule.
pub fn price_labels(p: &[f64], cfg: &TargetConfig) -> Vec<Option<f32>> {
    let (n, h, w) = (p.len(), cfg.horizon, cfg.vol_window.max(2));
    let logret: Vec<f64> = (0..n)
        .map(|t| {
            if t == 0 {
                f64::NAN
            } else {
                (p[t] / p[t - 1]).ln()
            }
        })
        .collect();
    (0..n)
        .map(|t| {
            if h >= n - t || t < w {
                return None; // future unknown, or not enough history for sigma
            }
            let win = &logret[t + 1 - w..=t];
            let mean = win.iter().sum::<f64>() / w as f64;
            let var = win.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (w - 1) as f64;
            let tau = (cfg.k * var.sqrt() * (h as f64).sqrt()).clamp(cfg.tau_min, cfg.tau_max);
            let r = p[t + h] / p[t] - 1.0;
            if cfg.drop_neutral && r.abs() <= tau {
                None
            } else {
                Some(if r > tau { 1.0 } else { 0.0 })
            }
        })
        .collect()
}

/// The classes of whole sequences, as the model's outputs see them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassLabels {
    /// Per sequence: 0/1 with two classes, the class index with more.
    pub y: Vec<f32>,
    /// The class taken as 1 (two classes only).
    pub positive: Option<String>,
    /// The other class, taken as 0 (two classes only).
    pub negative: Option<String>,
    /// Every class, in index order (numerically where all are numbers);
    /// empty with two classes, where `positive` says all.
    pub classes: Vec<String>,
}

/// The classes in `labels`: the numbers in numeric order, then the other
/// texts in text order.
pub fn sorted_classes(labels: &[String]) -> Vec<String> {
    let mut classes: Vec<&String> = labels.iter().collect();
    // A total order (numbers first, by value; then the other texts), which
    // `sort_by` needs: comparing a number and a text as texts made cycles
    // such as 9 < 10 < 1a < 9. Equal numbers written differently ("01",
    // "1") sort side by side, so that `dedup` sees each text once
    // ([`class_labels`] refuses them).
    classes.sort_by(
        |a, b| match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y).then_with(|| a.cmp(b)),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            _ => a.cmp(b),
        },
    );
    classes.dedup();
    classes.into_iter().cloned().collect()
}

/// Two class texts of one number (`01` and `1`, `1.0` and `1`): a typing
/// slip that would make two classes of one.
fn same_number(classes: &[String]) -> Option<(&str, &str)> {
    classes.windows(2).find_map(|w| {
        match (w[0].trim().parse::<f64>(), w[1].trim().parse::<f64>()) {
            (Ok(x), Ok(y)) if x == y => Some((w[0].as_str(), w[1].as_str())),
            _ => None,
        }
    })
}

/// Maps class labels of whole sequences to model targets. Two classes map
/// to 0/1, the positive one named by `positive_label`, else the larger
/// (numerically where both are numbers); more than two map to their index
/// in [`sorted_classes`] order, for a softmax head. One class is refused.
pub fn class_labels(source: &str, labels: &[String], cfg: &TargetConfig) -> Result<ClassLabels> {
    // A series without a label (an empty or NaN cell, a `.ts` line ending
    // in `:`) became a class of its own: a binary problem turned into
    // three classes, with no positive one.
    if let Some(i) = labels.iter().position(|l| l.trim().is_empty()) {
        return Err(Error::data(
            source,
            format!(
                "series {i} (counted from 0) has no label; training needs a class on every \
                 series: label it or drop it"
            ),
        ));
    }
    let classes = sorted_classes(labels);
    if let Some((a, b)) = same_number(&classes) {
        return Err(Error::data(
            source,
            format!(
                "the labels `{}` and `{}` are one number written two ways, which would make \
                 two classes of one; write each class one way",
                clip(a),
                clip(b)
            ),
        ));
    }
    if classes.len() < 2 {
        return Err(Error::data(
            source,
            format!(
                "the label has {} class{} ({}): a classifier needs at least two",
                classes.len(),
                if classes.len() == 1 { "" } else { "es" },
                classes.first().map_or("no rows".to_string(), |c| clip(c))
            ),
        ));
    }
    if classes.len() > MAX_CLASSES {
        return Err(Error::data(
            source,
            format!(
                "the label has {} classes; recur takes at most {MAX_CLASSES}: is the label column the right one?",
                classes.len()
            ),
        ));
    }
    if classes.len() > 2 {
        if let Some(p) = &cfg.positive_label {
            return Err(Error::config(
                "data.target.positive_label",
                format!(
                    "`{p}` is set but the label has {} classes ({}): a positive class only means something with two; remove it",
                    classes.len(),
                    classes.iter().take(10).map(|c| clip(c)).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let y = labels
            .iter()
            .map(|l| {
                classes
                    .iter()
                    .position(|c| c == l)
                    .expect("a class of labels") as f32
            })
            .collect();
        return Ok(ClassLabels {
            y,
            positive: None,
            negative: None,
            classes,
        });
    }
    // A number names the class of that number however either is written
    // (`positive_label: 1` for labels `0.0` and `1.0`, as numpy writes them).
    let number = |p: &str| {
        let v = p.trim().parse::<f64>().ok()?;
        classes
            .iter()
            .find(|c| c.trim().parse::<f64>() == Ok(v))
            .cloned()
    };
    let pos = match &cfg.positive_label {
        Some(p) if classes.contains(p) => p.clone(),
        Some(p) => number(p).ok_or_else(|| {
            Error::config(
                "data.target.positive_label",
                format!(
                    "`{}` is not one of the classes {} and {}",
                    clip(p),
                    clip(&classes[0]),
                    clip(&classes[1])
                ),
            )
        })?,
        None => classes[1].clone(),
    };
    let neg = classes.iter().find(|c| **c != pos).cloned();
    Ok(ClassLabels {
        y: labels
            .iter()
            .map(|l| if *l == pos { 1.0 } else { 0.0 })
            .collect(),
        positive: Some(pos),
        negative: neg,
        classes: Vec::new(),
    })
}

/// The most classes a label may have.
pub const MAX_CLASSES: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    /// `positive_label: 1` names the class numpy writes `1.0`; a label of
    /// no class is still refused.
    #[test]
    fn a_numeric_positive_label_names_its_class_however_written() {
        let labels: Vec<String> = ["0.0", "1.0", "1.0", "0.0"].map(String::from).into();
        let cfg = |p: &str| TargetConfig {
            positive_label: Some(p.into()),
            ..Default::default()
        };
        let c = class_labels("t", &labels, &cfg("1")).unwrap();
        assert_eq!(c.y, [0.0, 1.0, 1.0, 0.0]);
        assert_eq!(c.positive.as_deref(), Some("1.0"));
        let c = class_labels("t", &labels, &cfg("0")).unwrap();
        assert_eq!(c.y, [1.0, 0.0, 0.0, 1.0]);
        let e = class_labels("t", &labels, &cfg("2"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`2` is not one of the classes 0.0 and 1.0"),
            "{e}"
        );
    }

    #[test]
    fn horizon_shifts_labels_and_leaves_the_unknown_future_empty() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.csv");
        std::fs::write(&p, "x,y\n1,0\n2,1\n3,1\n4,0\n").unwrap();
        let t = Table::read(&p, None).unwrap();
        let cfg = TargetConfig {
            column: Some("y".into()),
            horizon: 1,
            ..Default::default()
        };
        assert_eq!(
            row_labels(&t, &cfg).unwrap(),
            vec![Some(1.0), Some(1.0), Some(0.0), None]
        );
        // A horizon past every row labels none (r + h wrapped to the row
        // before, whose label it read), with labels missing too.
        let cfg = TargetConfig {
            horizon: usize::MAX,
            ..cfg
        };
        assert_eq!(row_labels(&t, &cfg).unwrap(), vec![None; 4]);
        std::fs::write(&p, "x,y\n1,0\n2,\n3,1\n4,0\n").unwrap();
        let t = Table::read(&p, None).unwrap();
        assert_eq!(scored_row_labels(&t, &cfg).unwrap(), vec![None; 4]);
    }

    #[test]
    fn a_label_of_megabytes_is_clipped_where_a_message_shows_it() {
        let long = "x".repeat(10_000);
        let labels = vec![long.clone(), long];
        let e = class_labels("f.csv", &labels, &TargetConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1 class (xxx") && e.contains("(10000 characters)") && e.len() < 400,
            "{e}"
        );
    }

    #[test]
    fn non_binary_target_is_refused_with_its_row() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.csv");
        std::fs::write(&p, "x,y\n1,0\n2,2\n").unwrap();
        let t = Table::read(&p, None).unwrap();
        let cfg = TargetConfig {
            column: Some("y".into()),
            ..Default::default()
        };
        let e = row_labels(&t, &cfg).unwrap_err().to_string();
        assert!(
            e.contains("binary") && e.contains("row 1 (line 3)") && e.contains("holds 2"),
            "{e}"
        );
    }

    #[test]
    fn price_labels_follow_the_volatility_threshold() {
        // Flat-ish prices with tiny noise, then a jump: the jump is an up label.
        let mut p: Vec<f64> = (0..30)
            .map(|i| 100.0 + if i % 2 == 0 { 0.01 } else { -0.01 })
            .collect();
        p.push(110.0);
        let cfg = TargetConfig {
            horizon: 1,
            vol_window: 5,
            k: 1.0,
            ..Default::default()
        };
        let l = price_labels(&p, &cfg);
        assert_eq!(l[..5], [None, None, None, None, None]);
        assert_eq!(l[29], Some(1.0));
        assert_eq!(l[28], Some(0.0));
        assert_eq!(l[30], None);
        // A horizon past every row labels none (t + h wrapped).
        let far = TargetConfig {
            horizon: usize::MAX,
            ..cfg
        };
        assert!(price_labels(&p, &far).iter().all(Option::is_none));
    }

    #[test]
    fn class_labels_map_to_zero_one() {
        let labels: Vec<String> = ["1", "2", "2", "1"].iter().map(|s| s.to_string()).collect();
        let c = class_labels("f", &labels, &TargetConfig::default()).unwrap();
        assert_eq!(
            (c.y, c.positive.as_deref()),
            (vec![0.0, 1.0, 1.0, 0.0], Some("2"))
        );
        let three: Vec<String> = ["b", "10", "a", "9", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let c = class_labels("f", &three, &TargetConfig::default()).unwrap();
        assert_eq!(c.classes, vec!["9", "10", "a", "b"]);
        assert_eq!(c.y, vec![3.0, 1.0, 2.0, 0.0, 3.0]);
        let nums: Vec<String> = ["10", "9", "2"].iter().map(|s| s.to_string()).collect();
        assert_eq!(sorted_classes(&nums), vec!["2", "9", "10"]);
        // A total order where texts and numbers mix (9 < 10 < 1a < 9 was a
        // cycle), and one number written two ways is refused, not two
        // classes (interleaved, `dedup` missed them: 3 texts became 21).
        let mixed: Vec<String> = ["1a", "10", "9", "b", "1a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(sorted_classes(&mixed), vec!["9", "10", "1a", "b"]);
        let twice: Vec<String> = ["01", "1", "2", "01", "1", "2", "1.0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(sorted_classes(&twice), vec!["01", "1", "1.0", "2"]);
        let e = class_labels("f", &twice, &TargetConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`01` and `1` are one number"), "{e}");
        let one: Vec<String> = vec!["x".into(); 3];
        let e = class_labels("f", &one, &TargetConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1 class (x)") && e.contains("at least two"),
            "{e}"
        );
        let cfg = TargetConfig {
            positive_label: Some("a".into()),
            ..TargetConfig::default()
        };
        let e = class_labels("f", &three, &cfg).unwrap_err().to_string();
        assert!(
            e.contains("positive_label") && e.contains("4 classes"),
            "{e}"
        );
    }
}
