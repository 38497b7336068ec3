//! Conversions between LSP types and the document model's plain types.

use tower_lsp_server::ls_types as lsp;

use crate::document::{Edit, Encoding, Position};

pub fn position(p: lsp::Position) -> Position {
    Position::new(p.line, p.character)
}

pub fn to_position(p: Position) -> lsp::Position {
    lsp::Position::new(p.line, p.character)
}

pub fn edit(change: lsp::TextDocumentContentChangeEvent) -> Edit {
    Edit {
        range: change.range.map(|r| (position(r.start), position(r.end))),
        text: change.text,
    }
}

/// Pick the position encoding: UTF-8 when the client offers it (cheaper
/// for us and exact for Neovim/Helix), else UTF-16, the LSP default.
pub fn negotiate_encoding(caps: &lsp::ClientCapabilities) -> Encoding {
    let offered = caps
        .general
        .as_ref()
        .and_then(|g| g.position_encodings.as_ref());
    match offered {
        Some(list) if list.contains(&lsp::PositionEncodingKind::UTF8) => Encoding::Utf8,
        Some(list) if list.contains(&lsp::PositionEncodingKind::UTF16) || list.is_empty() => {
            Encoding::Utf16
        }
        Some(list) if list.contains(&lsp::PositionEncodingKind::UTF32) => Encoding::Utf32,
        _ => Encoding::Utf16,
    }
}

pub fn encoding_kind(enc: Encoding) -> lsp::PositionEncodingKind {
    match enc {
        Encoding::Utf8 => lsp::PositionEncodingKind::UTF8,
        Encoding::Utf16 => lsp::PositionEncodingKind::UTF16,
        Encoding::Utf32 => lsp::PositionEncodingKind::UTF32,
    }
}

/// A path for prompts: the URI's path relative to the workspace root when
/// possible, else the file name, else the URI itself.
pub fn display_path(uri: &str, root: Option<&str>) -> String {
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    if let Some(root) = root.map(|r| r.strip_prefix("file://").unwrap_or(r)) {
        if let Some(rel) = path.strip_prefix(root) {
            return rel.trim_start_matches('/').to_string();
        }
    }
    path.rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(path)
        .to_string()
}

/// `file:///a/b%20c.py` → `/a/b c.py`; other schemes have no path.
pub fn file_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("file://")?;
    let bytes = rest.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_decode() {
        assert_eq!(
            file_path("file:///w/a%20b.py").as_deref(),
            Some("/w/a b.py")
        );
        assert_eq!(file_path("file:///w/%2Eenv").as_deref(), Some("/w/.env"));
        assert_eq!(file_path("untitled:1"), None);
    }

    #[test]
    fn utf8_is_preferred_when_offered() {
        let mut caps = lsp::ClientCapabilities::default();
        assert_eq!(negotiate_encoding(&caps), Encoding::Utf16);
        caps.general = Some(lsp::GeneralClientCapabilities {
            position_encodings: Some(vec![
                lsp::PositionEncodingKind::UTF16,
                lsp::PositionEncodingKind::UTF8,
            ]),
            ..Default::default()
        });
        assert_eq!(negotiate_encoding(&caps), Encoding::Utf8);
    }

    #[test]
    fn paths_are_workspace_relative() {
        assert_eq!(
            display_path("file:///w/src/a.rs", Some("file:///w")),
            "src/a.rs"
        );
        assert_eq!(display_path("file:///x/b.py", Some("file:///w")), "b.py");
        assert_eq!(
            display_path("untitled:Untitled-1", None),
            "untitled:Untitled-1"
        );
    }
}
