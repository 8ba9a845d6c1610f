//! The README's library sample is `examples/library.rs` verbatim: the docs' front page
//! includes that file, cargo builds it as an example, and `examples/downstream/check.sh`
//! builds the README's copy in a new crate. This test keeps the copies the same.

#[test]
fn the_readme_library_sample_is_examples_library_rs() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/library.rs");
    let section = readme
        .split_once("\n## The library\n")
        .expect("README.md has a \"## The library\" section")
        .1;
    let sample = section
        .split_once("```rust\n")
        .and_then(|(_, rest)| rest.split_once("\n```\n"))
        .expect("a ```rust block in \"## The library\"")
        .0;
    assert_eq!(
        format!("{sample}\n"),
        example,
        "README.md's library sample differs from examples/library.rs: copy one into the other"
    );
    assert!(example.contains("fn main()") && example.contains("Trainer::new"));
}
