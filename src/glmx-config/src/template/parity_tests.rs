//! Parity with the reference engine (Forgather on Jinja2): Python str methods and globals.

use crate::template::Renderer;

fn render(text: &str) -> crate::error::Result<String> {
    Renderer::new(vec![]).render_str("p.yaml", text, minijinja::context!(title => "Model"))
}

fn ok(text: &str) -> String {
    render(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn str_format_follows_python() {
    // Expected values from CPython 3.12.
    let cases = [
        (
            "{{ '{:-^39}'.format(title) }}",
            "-----------------Model-----------------",
        ),
        (
            "{{ '{:>8}|{:<6}|{:^7}'.format('a', 'b', 'c') }}",
            "       a|b     |   c   ",
        ),
        ("{{ '{:*>8.2f}'.format(3.14159) }}", "****3.14"),
        (
            "{{ '{:05d} {:x} {:,}'.format(42, 255, 1234567) }}",
            "00042 ff 1,234,567",
        ),
        ("{{ '{:.3e}'.format(12345.678) }}", "1.235e+04"),
        ("{{ '{1}-{0}-{name}'.format('a', 'b', name='c') }}", "b-a-c"),
        ("{{ '{{}} {}'.format(1) }}", "{} 1"),
        (
            "{{ '{:+.1f} {:g} {:8.3s}|'.format(2.0, 0.00001, 'abcdef') }}",
            "+2.0 1e-05 abc     |",
        ),
    ];
    for (text, want) in cases {
        // In a comment, so the text is compared without YAML quoting.
        assert_eq!(ok(&format!("# {text}")), format!("# {want}"), "{text}");
    }
}

#[test]
fn other_python_str_methods_work() {
    assert_eq!(ok("{{ 'a.b.c'.split('.')[1] }}"), "b");
    assert_eq!(ok("{{ 'Model'.startswith('Mo') }}"), "True");
    assert_eq!(ok("{{ ' x '.strip().upper() }}"), "X");
}

#[test]
fn bad_format_spec_names_file_and_line() {
    let err = render("a: 1\nb: {{ '{:.2%}'.format(0.25) }}\n")
        .err()
        .map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(err.starts_with("p.yaml:2: "), "{err}");
    assert!(err.contains("str.format") && err.contains("'%'"), "{err}");
    let err = render("a: {{ '{} {}'.format(1) }}\n")
        .err()
        .map(|e| e.to_string());
    assert!(err.unwrap_or_default().contains("p.yaml:1"));
}

#[test]
fn reference_globals_exist_with_its_formats() {
    let out = ok("# {{ utcisotime() }} {{ filetime() }} {{ utcfiletime() }}");
    let parts: Vec<&str> = out.trim_start_matches("# ").split(' ').collect();
    assert_eq!(parts.len(), 3, "{out}");
    let shape = |s: &str| {
        s.chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect::<String>()
    };
    assert_eq!(shape(parts[0]), "9999-99-99T99:99:99");
    assert_eq!(shape(parts[1]), "9999-99-99T99-99-99");
    assert_eq!(shape(parts[2]), "9999-99-99T99-99-99");
    let cwd = std::env::current_dir().map(|d| d.display().to_string());
    assert_eq!(ok("{{ getcwd() }}"), cwd.unwrap_or_default());
    let home = std::env::var("HOME").unwrap_or_else(|_| "~".into());
    assert_eq!(ok("{{ user_home_dir() }}"), home);
    let dir = ok("{{ forgather_config_dir() }}");
    assert!(dir.ends_with("/forgather"), "{dir}");
    assert_eq!(
        ok("{{ modname_from_path('src/m/causal_lm.py') }}"),
        "causal_lm"
    );
}
