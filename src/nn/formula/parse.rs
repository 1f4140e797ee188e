//! Formula text to an expression tree: a recursive-descent parser with one token of
//! lookahead, reporting errors by column.
//!
//! Grammar (lowest binding first):
//!   sum     = product (('+' | '-') product)*
//!   product = unary (('*' | '/') unary)*
//!   unary   = ('-' | '+') unary | power
//!   power   = atom ('^' unary)?          right-associative; -x^2 is -(x^2)
//!   atom    = number | x | pi | e | '(' sum ')' | func '(' args ')'
//!   where(cond, a, b), cond = sum ('<' | '<=' | '>' | '>=') sum

use std::fmt;

use super::Func;
use crate::nn::names::nearest;

/// A comparison, allowed only as the condition of `where`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmp {
    /// a < b.
    Lt,
    /// a <= b.
    Le,
    /// a > b.
    Gt,
    /// a >= b.
    Ge,
}

impl Cmp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }

    /// Whether `a op b` holds.
    #[inline(always)]
    pub fn holds(self, a: f32, b: f32) -> bool {
        match self {
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

/// A parsed formula of x.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number (constants pi and e included).
    Num(f64),
    /// The input.
    X,
    /// -a.
    Neg(Box<Expr>),
    /// a + b.
    Add(Box<Expr>, Box<Expr>),
    /// a - b.
    Sub(Box<Expr>, Box<Expr>),
    /// a * b.
    Mul(Box<Expr>, Box<Expr>),
    /// a / b.
    Div(Box<Expr>, Box<Expr>),
    /// a ^ b.
    Pow(Box<Expr>, Box<Expr>),
    /// A function of one argument, or min/max of two.
    Call(Func, Vec<Expr>),
    /// where(l cmp r, a, b).
    Where(Cmp, Box<[Expr; 4]>),
}

/// A parse error: what was expected, at which 1-based column of the formula.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// What went wrong.
    pub message: String,
    /// 1-based column in the formula text.
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Sym(&'static str),
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Num(n) => write!(f, "'{n}'"),
            Tok::Ident(s) => write!(f, "'{s}'"),
            Tok::Sym(s) => write!(f, "'{s}'"),
            Tok::End => f.write_str("the end"),
        }
    }
}

/// Split the text into tokens with their 1-based columns.
fn lex(text: &str) -> Result<Vec<(Tok, usize)>, SyntaxError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let (n, end) = number(&chars, i)?;
            out.push((Tok::Num(n), col));
            i = end;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(chars[start..i].iter().collect()), col));
        } else {
            let (sym, len) = symbol(&chars[i..], col)?;
            out.push((Tok::Sym(sym), col));
            i += len;
        }
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

/// The number starting at `chars[start]`, and where it ends.
fn number(chars: &[char], start: usize) -> Result<(f64, usize), SyntaxError> {
    let mut i = start;
    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
        i += 1;
    }
    // An exponent only when digits follow: "2e" is 2 then the constant e.
    if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
        let sign = usize::from(matches!(chars.get(i + 1), Some('+' | '-')));
        if chars.get(i + 1 + sign).is_some_and(char::is_ascii_digit) {
            i += 1 + sign;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    let s: String = chars[start..i].iter().collect();
    let n = s.parse::<f64>().map_err(|_| SyntaxError {
        message: format!("'{s}' is not a number"),
        column: start + 1,
    })?;
    Ok((n, i))
}

/// The operator or bracket at the start of `chars` (at column `col`), and its length.
fn symbol(chars: &[char], col: usize) -> Result<(&'static str, usize), SyntaxError> {
    let two: String = chars[..2.min(chars.len())].iter().collect();
    match two.as_str() {
        "<=" => return Ok(("<=", 2)),
        ">=" => return Ok((">=", 2)),
        "**" => return Ok(("^", 2)),
        _ => {}
    }
    let sym = match chars[0] {
        '+' => "+",
        '-' => "-",
        '*' => "*",
        '/' => "/",
        '^' => "^",
        '(' => "(",
        ')' => ")",
        ',' => ",",
        '<' => "<",
        '>' => ">",
        c => {
            return Err(SyntaxError {
                message: format!("unexpected character '{c}'"),
                column: col,
            })
        }
    };
    Ok((sym, 1))
}

/// Longest formula accepted, in characters: far beyond any activation written by
/// hand, and short enough that no formula can exhaust memory or time.
pub const MAX_LEN: usize = 2000;

/// Deepest formula accepted: nesting of parentheses, calls and unary signs, and
/// chains of `+ - * /` (a sum of n terms is n deep). Evaluation, differentiation and
/// printing recurse over the tree, so this bounds their stack use on every thread.
pub const MAX_DEPTH: usize = 200;

/// Parse a formula of x (at most [`MAX_LEN`] characters and [`MAX_DEPTH`] deep).
pub fn parse(text: &str) -> Result<Expr, SyntaxError> {
    let len = text.chars().count();
    if len > MAX_LEN {
        return Err(SyntaxError {
            message: format!(
                "the formula is {len} characters long; at most {MAX_LEN} are accepted"
            ),
            column: MAX_LEN + 1,
        });
    }
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.sum()?;
    match p.peek() {
        Tok::End => Ok(e),
        Tok::Sym(s) if ["<", "<=", ">", ">="].contains(s) => Err(
            p.error("comparisons are allowed only as where's condition, e.g. where(x > 0, x, 0)")
        ),
        t => {
            let t = t.to_string();
            Err(p.error(&format!("expected an operator or the end, found {t}")))
        }
    }
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    /// Depth of the tree being built at this point of the descent.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }

    fn column(&self) -> usize {
        self.toks[self.pos.min(self.toks.len() - 1)].1
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn error(&self, message: &str) -> SyntaxError {
        SyntaxError {
            message: message.to_string(),
            column: self.column(),
        }
    }

    /// Go one level deeper, or refuse a formula nested beyond [`MAX_DEPTH`] before the
    /// recursion gets there.
    fn deeper(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(&format!(
                "the formula is nested more than {MAX_DEPTH} deep (parentheses, calls, signs or a chain of + - * / terms); split it or simplify it"
            )));
        }
        Ok(())
    }

    /// `f` one level deeper.
    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, SyntaxError>,
    ) -> Result<T, SyntaxError> {
        self.deeper()?;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Tok::Sym(s) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &str) -> Result<(), SyntaxError> {
        if self.eat(sym) {
            Ok(())
        } else {
            let found = self.peek().to_string();
            Err(self.error(&format!("expected '{sym}', found {found}")))
        }
    }

    /// A left-deep chain of terms: each further term deepens the tree by one.
    fn sum(&mut self) -> Result<Expr, SyntaxError> {
        let start = self.depth;
        let mut e = self.product()?;
        let r = loop {
            let op: fn(Box<Expr>, Box<Expr>) -> Expr = if self.eat("+") {
                Expr::Add
            } else if self.eat("-") {
                Expr::Sub
            } else {
                break Ok(e);
            };
            if let Err(err) = self.deeper() {
                break Err(err);
            }
            match self.product() {
                Ok(t) => e = op(Box::new(e), Box::new(t)),
                Err(err) => break Err(err),
            }
        };
        self.depth = start;
        r
    }

    fn product(&mut self) -> Result<Expr, SyntaxError> {
        let start = self.depth;
        let mut e = self.unary()?;
        let r = loop {
            let op: fn(Box<Expr>, Box<Expr>) -> Expr = if self.eat("*") {
                Expr::Mul
            } else if self.eat("/") {
                Expr::Div
            } else {
                break Ok(e);
            };
            if let Err(err) = self.deeper() {
                break Err(err);
            }
            match self.unary() {
                Ok(t) => e = op(Box::new(e), Box::new(t)),
                Err(err) => break Err(err),
            }
        };
        self.depth = start;
        r
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        if self.eat("-") {
            self.nested(|p| Ok(Expr::Neg(Box::new(p.unary()?))))
        } else if self.eat("+") {
            self.nested(Self::unary)
        } else {
            self.power()
        }
    }

    fn power(&mut self) -> Result<Expr, SyntaxError> {
        let base = self.atom()?;
        if self.eat("^") {
            self.nested(|p| Ok(Expr::Pow(Box::new(base), Box::new(p.unary()?))))
        } else {
            Ok(base)
        }
    }

    fn atom(&mut self) -> Result<Expr, SyntaxError> {
        let col = self.column();
        match self.next() {
            Tok::Num(n) => Ok(Expr::Num(n)),
            Tok::Sym("(") => self.nested(|p| {
                let e = p.sum()?;
                p.expect(")")?;
                Ok(e)
            }),
            Tok::Ident(name) => self.nested(|p| p.named(&name, col)),
            _ => Err(SyntaxError {
                message: "expected a number, x, or '('".into(),
                column: col,
            }),
        }
    }

    /// x, a constant, or a call.
    fn named(&mut self, name: &str, col: usize) -> Result<Expr, SyntaxError> {
        match name {
            "x" => return Ok(Expr::X),
            "pi" => return Ok(Expr::Num(std::f64::consts::PI)),
            "e" => return Ok(Expr::Num(std::f64::consts::E)),
            _ => {}
        }
        let at = |message: String| SyntaxError {
            message,
            column: col,
        };
        if !matches!(self.peek(), Tok::Sym("(")) {
            return Err(at(format!(
                "unknown variable '{name}': a formula has one variable, x (constants: pi, e)"
            )));
        }
        if name == "where" {
            self.expect("(")?;
            return self.where_args();
        }
        let Some(func) = Func::from_name(name) else {
            let mut names: Vec<&str> = Func::ALL.iter().map(|f| f.name()).collect();
            names.push("where");
            let hint = nearest(name, &names)
                .map(|n| format!(" (did you mean '{n}'?)"))
                .unwrap_or_default();
            return Err(at(format!(
                "unknown function '{name}'{hint}; functions: {}",
                names.join(" ")
            )));
        };
        self.expect("(")?;
        let mut args = vec![self.sum()?];
        while self.eat(",") {
            args.push(self.sum()?);
        }
        self.expect(")")?;
        if args.len() != func.arity() {
            return Err(at(format!(
                "{name} takes {} argument(s), got {}",
                func.arity(),
                args.len()
            )));
        }
        Ok(Expr::Call(func, args))
    }

    /// where's arguments after its '(': a comparison, then two formulas.
    fn where_args(&mut self) -> Result<Expr, SyntaxError> {
        let l = self.sum()?;
        let cmp = match self.next() {
            Tok::Sym("<") => Cmp::Lt,
            Tok::Sym("<=") => Cmp::Le,
            Tok::Sym(">") => Cmp::Gt,
            Tok::Sym(">=") => Cmp::Ge,
            _ => {
                self.pos -= 1;
                return Err(self.error("where's first argument is a comparison (< <= > >=)"));
            }
        };
        let r = self.sum()?;
        self.expect(",")?;
        let a = self.sum()?;
        self.expect(",")?;
        let b = self.sum()?;
        self.expect(")")?;
        Ok(Expr::Where(cmp, Box::new([l, r, a, b])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(text: &str) -> usize {
        parse(text).unwrap_err().column
    }

    #[test]
    fn power_binds_tighter_than_unary_minus_and_is_right_associative() {
        let neg_sq = parse("-x^2").unwrap();
        assert_eq!(
            neg_sq,
            Expr::Neg(Box::new(Expr::Pow(
                Box::new(Expr::X),
                Box::new(Expr::Num(2.0))
            )))
        );
        let tower = parse("2^3^2").unwrap();
        assert!(matches!(tower, Expr::Pow(_, ref r) if matches!(**r, Expr::Pow(..))));
        assert!(parse("x^-2").is_ok());
        assert!(parse("2 ** x").is_ok());
    }

    #[test]
    fn numbers_and_constants() {
        assert_eq!(parse("1e-3").unwrap(), Expr::Num(1e-3));
        assert_eq!(parse(".5").unwrap(), Expr::Num(0.5));
        assert!(matches!(parse("2*e").unwrap(), Expr::Mul(..)));
        assert_eq!(parse("pi").unwrap(), Expr::Num(std::f64::consts::PI));
    }

    #[test]
    fn errors_point_at_the_column() {
        let e = parse("x * sigmoid(1.702 *)").unwrap_err();
        assert_eq!(e.message, "expected a number, x, or '('");
        assert_eq!(e.column, 20);
        assert_eq!(col("x +"), 4);
        assert_eq!(col("x $ 2"), 3);
        assert_eq!(col("(x + 1"), 7);
        assert_eq!(col("x > 0"), 3);
        assert_eq!(col("exp(x, 2)"), 1);
    }

    #[test]
    fn unknown_names_are_refused_with_a_suggestion() {
        let e = parse("x * sigmod(x)").unwrap_err();
        assert!(
            e.message.contains("did you mean 'sigmoid'"),
            "{}",
            e.message
        );
        assert_eq!(e.column, 5);
        let e = parse("x * y").unwrap_err();
        assert!(e.message.contains("unknown variable 'y'"), "{}", e.message);
        assert!(parse("where(x, 1, 2)").is_err());
        assert!(parse("where(x >= 0, x, 0.1 * x)").is_ok());
    }

    #[test]
    fn long_and_deep_formulas_are_refused_not_overflowed() {
        let deep = format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&deep).unwrap_err().message.contains("2000"));
        let within = |n: usize, piece: &str| piece.repeat(n);
        for text in [
            format!("{}x{}", within(300, "("), within(300, ")")),
            format!("{}x", within(300, "-")),
            format!("x{}", within(300, "+x")),
            format!("x{}", within(300, "*x")),
            format!("{}x{}", within(300, "exp("), within(300, ")")),
            format!("x{}", within(300, "^x")),
        ] {
            let e = parse(&text).unwrap_err();
            assert!(e.message.contains("nested more than 200"), "{}", e.message);
        }
        // Right at the limits a formula still parses.
        let ok = format!("{}x{}", within(150, "("), within(150, ")"));
        assert_eq!(parse(&ok).unwrap(), Expr::X);
        assert!(parse(&format!("x{}", within(150, "+x"))).is_ok());
    }
}
