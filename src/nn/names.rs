//! Names in error messages: the closest valid name to a mistyped one.

/// Suggest the closest of `options` to `input` (edit distance), for error messages.
pub fn nearest<'a>(input: &str, options: &[&'a str]) -> Option<&'a str> {
    // Optimal-string-alignment distance: edits plus adjacent transpositions ("rleu" -> "relu").
    fn dist(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for (i, row) in d.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, v) in d[0].iter_mut().enumerate() {
            *v = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut v = (d[i - 1][j] + 1)
                    .min(d[i][j - 1] + 1)
                    .min(d[i - 1][j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[i - 2][j - 2] + 1);
                }
                d[i][j] = v;
            }
        }
        d[a.len()][b.len()]
    }
    options
        .iter()
        .map(|o| {
            (
                dist(&input.to_lowercase(), o),
                o.len().abs_diff(input.len()),
                *o,
            )
        })
        .filter(|(d, _, o)| *d <= (o.len() / 2).max(2))
        .min()
        .map(|(_, _, o)| o)
}

/// "unknown X 'y' (did you mean 'z'?); valid: a, b, c".
pub fn unknown_name(kind: &str, input: &str, options: &[&str]) -> String {
    let hint = nearest(input, options)
        .map(|n| format!(" (did you mean '{n}'?)"))
        .unwrap_or_default();
    format!(
        "unknown {kind} '{input}'{hint}; valid: {}",
        options.join(", ")
    )
}
