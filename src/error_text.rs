//! An error and its causes on one line, for messages: reqwest's own text ("error sending
//! request") rarely says what went wrong, its sources do.

/// `e`, then each cause not already in the text, joined by `: `.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}
