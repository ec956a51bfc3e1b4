//! A drill's target group, imported as CSV: `email,name,department` per line (a header line
//! naming those columns may come first, in any order; quotes as RFC 4180 writes them). Bounded:
//! at most [`MAX_TARGETS`] people, each field at most 200 characters.

/// Most people in one drill.
pub const MAX_TARGETS: usize = 50_000;
/// Longest field.
const MAX_FIELD: usize = 200;

/// One person a drill mails.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// Their address, lower case.
    pub email: String,
    /// Their name (the address's local part when none is given).
    pub name: String,
    /// Their department ("" when none is given).
    pub department: String,
}

/// The people of a CSV document; a bad line is refused with its number.
pub fn parse(csv: &str) -> Result<Vec<Target>, String> {
    let mut out: Vec<Target> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut columns = (0usize, Some(1usize), Some(2usize));
    for (n, line) in csv.lines().enumerate() {
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let lower: Vec<String> = fields.iter().map(|f| f.trim().to_lowercase()).collect();
        if out.is_empty() && seen.is_empty() && lower.iter().any(|f| f == "email" || f == "邮箱")
        {
            let find = |names: &[&str]| lower.iter().position(|f| names.contains(&f.as_str()));
            columns = (
                find(&["email", "邮箱"]).unwrap_or(0),
                find(&["name", "姓名"]),
                find(&["department", "部门"]),
            );
            continue;
        }
        let get = |i: Option<usize>| {
            i.and_then(|i| fields.get(i))
                .map(|f| f.trim().to_owned())
                .unwrap_or_default()
        };
        let email = get(Some(columns.0)).to_lowercase();
        let (name, department) = (get(columns.1), get(columns.2));
        let valid = email.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !email.contains(char::is_whitespace)
        });
        if !valid {
            return Err(format!("line {}: `{email}` is not an address", n + 1));
        }
        if [&email, &name, &department]
            .iter()
            .any(|f| f.chars().count() > MAX_FIELD || f.chars().any(char::is_control))
        {
            return Err(format!(
                "line {}: a field is too long or holds control characters",
                n + 1
            ));
        }
        if !seen.insert(email.clone()) {
            continue;
        }
        if out.len() == MAX_TARGETS {
            return Err(format!("more than {MAX_TARGETS} people"));
        }
        let name = if name.is_empty() {
            email.split('@').next().unwrap_or_default().to_owned()
        } else {
            name
        };
        out.push(Target {
            email,
            name,
            department,
        });
    }
    if out.is_empty() {
        return Err("no one to mail".into());
    }
    Ok(out)
}

/// The fields of one CSV line.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (false, ',' | '，' | ';' | '\t') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_come_with_their_names_and_departments_in_any_column_order() {
        let csv = "\u{feff}姓名,部门,邮箱\r\n张三,财务部,Zhang.San@Example.com\r\n\
                   \"Li, Si\",\"研发\"\"一\"\"部\",lisi@example.com\r\n\
                   # a comment\r\n,,wang@example.com\r\ndup,dup,zhang.san@example.com\r\n";
        let t = parse(csv).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            (
                t[0].email.as_str(),
                t[0].name.as_str(),
                t[0].department.as_str()
            ),
            ("zhang.san@example.com", "张三", "财务部")
        );
        assert_eq!(
            (t[1].name.as_str(), t[1].department.as_str()),
            ("Li, Si", "研发\"一\"部")
        );
        assert_eq!(t[2].name, "wang");
        // Without a header: email, name, department.
        let t = parse("a@example.com,A,Sales\nb@example.com").unwrap();
        assert_eq!((t[1].name.as_str(), t[1].department.as_str()), ("b", ""));
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        assert!(parse("not-an-address,x,y").unwrap_err().contains("line 1"));
        assert!(
            parse("a@example.com,\"open")
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(parse(&format!("a@example.com,{},d", "x".repeat(201))).is_err());
        assert!(parse("").is_err());
    }
}
