//! The built-in drill templates (演练模板): the lures organisations meet most — a mailbox
//! upgrade, a salary adjustment, a parcel notice, an invoice, an account anomaly — each in
//! Chinese and English. A template is HTML with placeholders: `{{name}}` (the recipient's
//! name), `{{email}}`, `{{department}}`, `{{link}}` (their tracked link), `{{date}}`. The open
//! pixel is added by the sender, never by the template.

use serde::{Deserialize, Serialize};

/// One template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Its id (`builtin:…` for the built-in ones).
    pub id: String,
    /// What it is called in the console.
    pub title: String,
    /// The sender's display name the lure uses.
    pub from_name: String,
    /// Subject, with placeholders.
    pub subject: String,
    /// HTML body, with placeholders.
    pub html: String,
    /// The landing page's heading (the fake sign-in the link leads to).
    pub landing: String,
}

struct Builtin {
    id: &'static str,
    title: &'static str,
    from_name: &'static str,
    subject: &'static str,
    body: &'static str,
    landing: &'static str,
}

const BUILTIN: &[Builtin] = &[
    Builtin {
        id: "builtin:mailbox-upgrade-zh",
        title: "邮箱升级（中文）",
        from_name: "信息中心",
        subject: "【重要】邮箱系统升级，请于今日内完成账号验证",
        body: "<p>{{name}}，您好：</p><p>为提升邮件系统安全性，信息中心将于近期完成邮箱系统升级。\
               请在 24 小时内点击下方链接验证您的账号（{{email}}），逾期未验证的账号将被暂停使用。</p>\
               <p><a href=\"{{link}}\">立即验证邮箱账号</a></p><p>信息中心<br>{{date}}</p>",
        landing: "邮箱账号验证",
    },
    Builtin {
        id: "builtin:mailbox-upgrade-en",
        title: "Mailbox upgrade (English)",
        from_name: "IT Service Desk",
        subject: "Action required: verify your mailbox before the upgrade",
        body: "<p>Dear {{name}},</p><p>We are upgrading the mail system. Please verify your account \
               ({{email}}) within 24 hours, or it will be suspended.</p>\
               <p><a href=\"{{link}}\">Verify my mailbox</a></p><p>IT Service Desk<br>{{date}}</p>",
        landing: "Mailbox verification",
    },
    Builtin {
        id: "builtin:salary-zh",
        title: "薪资调整（中文）",
        from_name: "人力资源部",
        subject: "关于 {{department}} 2026 年度薪资调整的通知",
        body: "<p>{{name}}，您好：</p><p>根据公司年度薪酬方案，您所在的{{department}}薪资调整明细已发布，\
               请登录查看并于本周内确认。</p><p><a href=\"{{link}}\">查看薪资调整明细</a></p>\
               <p>人力资源部<br>{{date}}</p>",
        landing: "薪酬系统登录",
    },
    Builtin {
        id: "builtin:salary-en",
        title: "Salary adjustment (English)",
        from_name: "Human Resources",
        subject: "Your 2026 salary adjustment is ready",
        body: "<p>Dear {{name}},</p><p>The salary adjustments for {{department}} have been published. \
               Please sign in to review and confirm yours this week.</p>\
               <p><a href=\"{{link}}\">Review my adjustment</a></p><p>Human Resources<br>{{date}}</p>",
        landing: "Payroll sign-in",
    },
    Builtin {
        id: "builtin:parcel-zh",
        title: "快递通知（中文）",
        from_name: "快递服务",
        subject: "您的快递因地址不详无法派送，请重新确认",
        body: "<p>尊敬的 {{name}}：</p><p>您有一件快递因收件地址不完整暂存网点，请在 48 小时内确认地址，\
               逾期将退回寄件人。</p><p><a href=\"{{link}}\">确认收件地址</a></p><p>{{date}}</p>",
        landing: "快递地址确认",
    },
    Builtin {
        id: "builtin:parcel-en",
        title: "Parcel notice (English)",
        from_name: "Parcel Delivery",
        subject: "We could not deliver your parcel",
        body: "<p>Dear {{name}},</p><p>Your parcel is held at our depot because the address is \
               incomplete. Please confirm it within 48 hours or it will be returned.</p>\
               <p><a href=\"{{link}}\">Confirm my address</a></p><p>{{date}}</p>",
        landing: "Confirm delivery address",
    },
    Builtin {
        id: "builtin:invoice-zh",
        title: "发票（中文）",
        from_name: "财务部",
        subject: "电子发票待您确认（报销截止本周五）",
        body: "<p>{{name}}，您好：</p><p>您提交的报销单据对应的电子发票已开具，请登录财务系统下载并确认，\
               本期报销截止本周五。</p><p><a href=\"{{link}}\">下载电子发票</a></p><p>财务部<br>{{date}}</p>",
        landing: "财务系统登录",
    },
    Builtin {
        id: "builtin:invoice-en",
        title: "Invoice (English)",
        from_name: "Accounts Payable",
        subject: "Invoice awaiting your approval",
        body: "<p>Dear {{name}},</p><p>An invoice is waiting for your approval before Friday's payment \
               run.</p><p><a href=\"{{link}}\">Open the invoice</a></p><p>Accounts Payable<br>{{date}}</p>",
        landing: "Finance portal sign-in",
    },
    Builtin {
        id: "builtin:account-anomaly-zh",
        title: "账号异常（中文）",
        from_name: "安全中心",
        subject: "【安全提醒】您的账号在异地登录",
        body: "<p>{{name}}，您好：</p><p>系统检测到您的账号（{{email}}）于 {{date}} 在异地登录。\
               如非本人操作，请立即修改密码。</p><p><a href=\"{{link}}\">立即修改密码</a></p><p>安全中心</p>",
        landing: "账号安全中心",
    },
    Builtin {
        id: "builtin:account-anomaly-en",
        title: "Account anomaly (English)",
        from_name: "Security Center",
        subject: "Unusual sign-in to your account",
        body: "<p>Dear {{name}},</p><p>We noticed a sign-in to your account ({{email}}) from a new \
               location on {{date}}. If this was not you, change your password now.</p>\
               <p><a href=\"{{link}}\">Secure my account</a></p><p>Security Center</p>",
        landing: "Account security",
    },
];

/// The built-in templates.
pub fn builtin() -> Vec<Template> {
    BUILTIN
        .iter()
        .map(|b| Template {
            id: b.id.into(),
            title: b.title.into(),
            from_name: b.from_name.into(),
            subject: b.subject.into(),
            html: b.body.into(),
            landing: b.landing.into(),
        })
        .collect()
}

/// What the placeholders stand for in one recipient's copy.
pub struct Fill<'a> {
    /// `{{name}}`.
    pub name: &'a str,
    /// `{{email}}`.
    pub email: &'a str,
    /// `{{department}}`.
    pub department: &'a str,
    /// `{{link}}`.
    pub link: &'a str,
    /// `{{date}}`.
    pub date: &'a str,
}

/// `text` with its placeholders filled; values are HTML-escaped when `html`.
pub fn fill(text: &str, f: &Fill<'_>, html: bool) -> String {
    let esc = |s: &str| {
        if html {
            crate::quarantine::digest::escape_html(s)
        } else {
            s.to_owned()
        }
    };
    let mut out = String::with_capacity(text.len() + 256);
    let mut rest = text;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[at..]);
            return out;
        };
        let value = match &after[..end] {
            "name" => esc(f.name),
            "email" => esc(f.email),
            "department" => esc(f.department),
            "link" => esc(f.link),
            "date" => esc(f.date),
            other => format!("{{{{{other}}}}}"),
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_template_leads_to_the_link_and_fills_cleanly() {
        let all = builtin();
        assert_eq!(all.len(), 10);
        let f = Fill {
            name: "张<三>",
            email: "zhang@example.com",
            department: "财务部",
            link: "https://gw.test/d/T?a=1&b=2",
            date: "2026-12-05",
        };
        for t in &all {
            let html = fill(&t.html, &f, true);
            assert!(
                html.contains("href=\"https://gw.test/d/T?a=1&amp;b=2\""),
                "{}",
                t.id
            );
            assert!(!html.contains("{{") && !html.contains("<三>"), "{}", t.id);
            assert!(!fill(&t.subject, &f, false).contains("{{"), "{}", t.id);
        }
        assert_eq!(fill("{{unknown}} {{name", &f, false), "{{unknown}} {{name");
    }
}
