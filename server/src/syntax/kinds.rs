//! Node-kind classes shared by the grammars we ship. Grammar authors name
//! things alike (`block`, `*_statement`, `comment`), so a few lists cover
//! all eleven languages; the tests in `context` exercise them per language.

/// Nodes whose children are statements or declarations: a line that
/// starts a child of one of these is a syntax boundary.
pub fn is_container(kind: &str) -> bool {
    matches!(
        kind,
        "module"
            | "source_file"
            | "program"
            | "translation_unit"
            | "chunk"
            | "block"
            | "statement_block"
            | "compound_statement"
            | "declaration_list"
            | "field_declaration_list"
            | "class_body"
            | "interface_body"
            | "enum_body"
            | "enum_variant_list"
            | "class_declaration_body"
            | "object_type"
            | "function_body"
            | "do_group"
            | "compound_command"
            | "switch_body"
            | "switch_block"
            | "literal_value"
            | "statement_list"
    ) || kind.ends_with("_block")
}

/// A container with no delimiters of its own, inside a delimited one (Go's
/// `statement_list` inside `block`): block-closing questions look past it.
pub fn is_delimited_container(kind: &str) -> bool {
    is_container(kind) && kind != "statement_list"
}

/// Definitions whose first line (signature, class/impl header) is worth
/// keeping above a prefix window that cut them.
pub fn is_scope(kind: &str) -> bool {
    matches!(
        kind,
        // python
        "function_definition" | "class_definition" | "decorated_definition"
        // rust
        | "function_item" | "impl_item" | "trait_item" | "mod_item" | "struct_item" | "enum_item"
        // js / ts
        | "function_declaration" | "class_declaration" | "method_definition" | "class"
        | "function_expression" | "generator_function_declaration" | "interface_declaration"
        | "abstract_class_declaration" | "internal_module"
        // go
        | "method_declaration" | "type_declaration"
        // c / c++ / java
        | "class_specifier" | "struct_specifier" | "namespace_definition" | "constructor_declaration"
        | "interface_declaration_java" | "enum_declaration" | "record_declaration"
        // lua / bash
        | "function_definition_statement" | "local_function_definition_statement"
    )
}

/// Import-like top-level statements (kept above a cut window).
pub fn is_import(kind: &str) -> bool {
    matches!(
        kind,
        "import_statement"
            | "import_from_statement"
            | "future_import_statement"
            | "use_declaration"
            | "extern_crate_declaration"
            | "import_declaration"
            | "package_clause"
            | "package_declaration"
            | "preproc_include"
            | "using_declaration"
    )
}

pub fn is_comment(kind: &str) -> bool {
    matches!(kind, "comment" | "line_comment" | "block_comment")
}

/// String literal nodes (the whole literal, delimiters included).
pub fn is_string(kind: &str) -> bool {
    matches!(
        kind,
        "string"
            | "string_literal"
            | "raw_string_literal"
            | "interpreted_string_literal"
            | "template_string"
            | "concatenated_string"
            | "raw_string"
            | "char_literal"
    )
}

/// The child field that holds a scope's body, where the header ends.
pub const BODY_FIELDS: &[&str] = &["body", "block"];
