// Jianmen console. Plain DOM, no framework, no inline script (the CSP forbids it): every value
// from the server is inserted as text, never as HTML.
'use strict';

const T = {
  'zh-CN': {
    dashboard: '总览', quarantine: '隔离区', tracking: '邮件追踪', policy: '策略', system: '系统',
    accounts: '账号与角色', audit: '审计日志', logout: '退出', login: '登录', username: '用户名',
    password: '密码', signin: '登录', changePassword: '修改密码', currentPassword: '当前密码',
    newPassword: '新密码', save: '保存', mustChange: '首次登录，请先修改密码。', search: '查询',
    sender: '发件人', rcpt: '收件人', subject: '主题', class: '类别', score: '分数', time: '时间',
    status: '状态', reason: '原因', release: '放行', releaseNotSpam: '放行并标记为非垃圾邮件',
    delete: '删除', download: '下载 .eml', back: '返回', released: '已放行', deleted: '已删除',
    evidence: '判定依据', symbol: '规则', detail: '详情', history: '处理记录', event: '事件',
    clientIp: '客户端 IP', queueId: '队列 ID', all: '全部', held: '隔离中', total: '共',
    items: '条', noItems: '没有记录', topSenders: '被拦截最多的发件人',
    topTargets: '被拦截最多的收件人', role: '角色', domain: '域', created: '创建时间',
    lastLogin: '最后登录', locked: '锁定至', create: '创建', reset: '重置密码', unlock: '解锁',
    initialPassword: '初始密码（仅显示一次）', atAppliance: '安全管理员和审计管理员账号只能在设备上以 root 身份用 jianmen account 命令创建、重置或删除（三权分立）；安全管理员在此管理各域的域管理员。', verify: '校验完整性', export: '导出审计包（已签名）', intact: '审计链完整',
    broken: '审计链被破坏', actor: '操作人', action: '操作', confirmDelete: '确定删除？',
    roles: { system: '系统管理员', security: '安全管理员', audit: '审计管理员' },
    preview: '预览（已净化，远程内容已阻止）', thresholds: '阈值', protectedDomains: '受保护域',
    queue: '队列', version: '版本', hostname: '主机名', routes: '路由', retention: '隔离保留天数',
    upgrade: '离线升级', upgradePackage: '升级包（.jup，须由受信任的厂商密钥签名）',
    upgradeApply: '上传并升级', upgradeSending: '正在上传并校验…',
    upgradeStarted: '校验通过，网关正在重启并试运行新版本（健康检查失败将自动回退）：',
    approve: '批准外发', reject: '拒绝外发', approved: '已批准，邮件已投递', rejected: '已拒绝，已通知发件人',
    confirmReject: '确定拒绝？发件人将收到退信（不含邮件内容）。', approvals: '外发审批', expired: '已过期',
    direction: '方向', inbound: '入站', outbound: '出站', internal: '内部', expires: '到期时间',
    name: '名称', approvalHours: '审批时限（小时）',
    keywords: '关键词', patterns: '正则', encrypted: '加密附件', dlp_log: '放行并记录', dlp_hold: '暂扣待审批',
    dlp_block: '拒绝',
    risk: '风险账户', account: '账户', level: '处置', volume24h: '24 小时发信量', explanation: '异常说明',
    since: '处置时间', lastSent: '最近发信', messages: '已统计邮件', heldMail: '暂扣邮件',
    level_normal: '正常', level_alert: '告警', level_throttled: '限速', level_held: '暂扣待审', level_blocked: '禁止发信',
    clear: '解除（误报）', confirmCompromise: '确认失陷', cleared: '已解除，暂扣邮件已放行',
    confirmed: '已确认失陷，账户已禁止发信，暂扣邮件已删除',
    confirmClear: '确定解除？该账户恢复发信，暂扣的邮件将全部投递，其行为画像将学习此次发信。',
    confirmConfirm: '确定确认失陷？该账户将被禁止发信，暂扣的邮件将被删除。请同时在邮件系统中重置其密码。',
    reason_volume: '1 小时内发信 {messages} 封（平时 {usual} 封）',
    reason_new_recipients: '1 小时内 {rcpts} 个收件人中 {percent}% 从未联系过（平时 {usual_percent}%）',
    reason_flagged: '1 小时内 {messages} 封中 {flagged} 封被判为垃圾或钓鱼邮件',
    reason_new_network: '来自新的网络 {network}', reason_odd_hour: '在平时从不发信的时段发信',
    reason_past_throttle: '限速后仍尝试发出 {tried} 封（每小时限 {per_hour} 封）',
    riskIntro: '按内部账户的发信行为（发信量、陌生收件人、新登录地址、被判为垃圾/钓鱼的邮件等）评分，超过策略阈值时自动告警、限速、暂扣或禁止发信。',
    channels: '发信通道', kind: '类型', kind_source: '源地址', kind_socks5: 'SOCKS5 中继节点', kind_smarthost: '上游中继',
    egress: '出口地址', state: '状态', state_active: '使用中', state_reserve: '备用', state_listed: '被列入黑名单',
    state_down: '故障', state_drained: '已停用', promoted: '备用顶替', listings: '黑名单', successRate: '成功率',
    delivered: '已投递', deferred: '转交/推迟', inFlight: '进行中', recentErrors: '最近错误', refusals: '黑名单拒收',
    drain: '停用', activate: '启用', drainedNow: '已停用，邮件改走其他通道', activatedNow: '已启用',
    confirmDrain: '确定停用该通道？它的邮件将改走其他通道。', watchedLists: '监测的黑名单',
    passiveOnly: '未配置（仅依据目的服务器的黑名单拒收判断）', from: '原状态', to: '新状态',
    recall: '邮件召回', hunt: '查找已投递邮件', term: '查找依据', term_sha256: '附件 SHA-256', term_url: '链接',
    term_domain: '链接域名', term_sender: '发件人', term_message_id: 'Message-ID', term_queue_id: '队列 ID',
    value: '值', recipients: '收件人', recallIt: '召回', recallReason: '召回原因（记入审计日志）',
    confirmRecall: '确定从所有收件人的邮箱中召回这封邮件？', recalls: '召回记录', progress: '进度',
    undo: '撤销召回（放回原文件夹）', undone: '正在放回', mailbox: '邮箱', folders: '原文件夹',
    recallIntro: '按附件哈希、链接、域名、发件人或 Message-ID 查找已投递到本单位邮箱的邮件，一键从所有收件人的邮箱中召回（移入隐藏的召回文件夹，可撤销）。',
    rstate_pending: '等待', rstate_working: '召回中', rstate_recalled: '已召回', rstate_absent: '邮箱中没有',
    rstate_failed: '失败', rstate_restoring: '放回中', rstate_restored: '已放回', rstate_restore_failed: '放回失败',
    drills: '钓鱼演练', drillsIntro: '向选定人员发送仿真钓鱼邮件，统计打开、点击、提交表单（只记录"提交了"，绝不接收或保存输入内容）和举报的人数，按部门查看结果和历次演练的趋势。演练邮件不经过本网关的检测直接投递。',
    newDrill: '新建演练', template: '模板', fromName: '发件人名称', fromAddress: '发件人地址',
    targetsCsv: '演练对象（CSV：邮箱,姓名,部门）', startAt: '开始时间', ratePerMinute: '每分钟发送',
    createDrill: '创建', schedule: '开始发送', pause: '暂停', exportCsv: '导出 CSV', printReport: '打印报告',
    dstate_draft: '草稿', dstate_scheduled: '发送中', dstate_paused: '已暂停', dstate_done: '已发完',
    targets: '人数', sent: '已发送', opened: '打开', clicked: '点击', submitted: '提交表单', reported: '举报',
    medianClick: '点击用时中位数', department: '部门', trend: '历次演练的点击、提交与举报比例', preview: '预览', rate: '比例',
    editTemplate: '编辑模板', templateHelp: '以所选模板为起点，保存为自定义模板。可用占位符：{{name}} {{email}} {{department}} {{link}}（必须） {{date}}。',
    landingTitle: '登录页标题', saveTemplate: '保存为自定义模板', saved: '已保存',
    links: '安全链接', linksIntro: '入站邮件中的网址被改写为经本网关跳转的签名链接；用户点击时按当时的黑名单、威胁情报和仿冒检测重新判定，安全则直接跳转，危险则显示警告页。每次点击都记入邮件追踪；投递后才变为危险的链接被点击时通知管理员，并可按策略自动召回该邮件。',
    linksOff: '未启用（配置 [links] enabled = true）', baseUrl: '跳转地址', skipDomains: '不改写的域名',
    maxAgeDays: '链接有效天数', onBad: '危险链接', onBad_warn: '警告，可继续访问', onBad_block: '警告并禁止访问',
    notifyTo: '通知', recallOnBad: '自动召回', perRcptMax: '逐个收件人改写的上限', clicks: '最近点击',
    yes: '是', no: '否',
    intel: '威胁情报', intelIntro: '从 TAXII 2.1 情报源定期拉取 STIX 指标（文件哈希、链接、域名、发件人、IP），或导入 STIX 文件（离线环境）。指标立即用于拦截新来邮件（SMTP 阶段拒收），并回溯查找已投递的邮件：按策略自动召回或提示管理员召回；指标到期（STIX 有效期结束）或被撤销后失效。',
    sources: '情报源', lastPoll: '最近拉取', lastOk: '最近成功', received: '已接收', unusable: '无法使用',
    cursor: '拉取进度', inForce: '生效中的特征', onMatch: '命中已投递邮件时', onMatch_recall: '自动召回',
    onMatch_propose: '提示管理员召回', indicators: '指标', observables: '特征', validUntil: '有效期至',
    noEnd: '长期有效', expired: '已过期', revoked: '已撤销', inEffect: '生效', hits: '回溯命中',
    indicator: '指标', hstate_proposed: '待处理', hstate_recalling: '已发起召回', hstate_failed: '召回失败',
    importIntel: '导入 STIX 2.1 文件（JSON）', importApply: '导入',
    imported: '已导入：新增或更新 {new} 条，未变 {unchanged} 条，无法使用 {skipped_count} 条，命中已投递邮件 {hits} 封',
    openRecall: '查看召回',
    channelsIntro: '发往互联网的邮件经多个通道发出：按目的域选择成功率最高的通道；连接失败、超时、临时拒收或因黑名单被拒时立即改走下一通道。每个通道的出口地址定期在黑名单中查询，被列入即移出轮换、启用备用通道并通知管理员；解除并经观察期后自动恢复。',
    pol_version: '当前生效：第 {n} 版 · {who} · {at}', src_file: '配置文件', src_console: '控制台',
    cls_spam: '垃圾邮件', cls_spam_high: '高分垃圾邮件', cls_phish: '钓鱼邮件', cls_bec: '商务邮件诈骗（BEC）',
    cls_virus: '病毒', cls_unscannable: '无法完整检查', cls_other: '其他',
    act_deliver: '投递', act_tag: '标记主题后投递', act_quarantine: '隔离', act_reject: '拒收（550）', act_discard: '接收后丢弃',
    thresholdsHelp: '规则与模型给出的分数达到阈值即判为该类；高分垃圾邮件阈值须不低于垃圾邮件阈值。',
    rulesTitle: '规则开关与分值', rulesHelp: '每条规则（检测符号）命中时为邮件加的分，负分是正常邮件的证据。关闭即记 0 分；只保存与规则文件不同的值，对下一封邮件生效。',
    ruleFilter: '按名称或说明筛选', ruleChangedOnly: '只看已调整的', ruleOn: '启用 {s}', rulePoints: '{s} 的分值', ruleName: '规则',
    ruleCategory: '类别', ruleDescription: '说明', ruleDefault: '默认分', ruleScore: '分值', ruleEnabled: '启用',
    rulesChanged: '共 {n} 条规则，已调整 {c} 条', noRules: '检测未启用，没有可调整的规则。', cls_ham: '正常邮件证据',
    actionsTitle: '处置动作', allowList: '允许名单', blockList: '阻止名单',
    listHelp: '每行一项：邮箱地址、@域名、IP 或 CIDR 网段。阻止优先于允许。', entries: '{n} 项',
    exportList: '导出', importList: '从文件导入（追加）', domainPolicies: '按域策略',
    ownPolicy: '为该域单独设置', inheritThresholds: '阈值沿用全局设置', inheritActions: '处置动作沿用全局设置',
    comment: '修改说明', savePolicy: '保存并立即生效', confirmPolicy: '保存为新版本，并立即对之后收到的邮件生效？',
    policySaved: '已保存为第 {n} 版，已生效。', policyVersions: '历史版本', changes: '改动', setting: '设置项',
    before: '原值', after: '新值', rollback: '回滚到此版本', confirmRollback: '确定回滚到第 {n} 版？将另存为新版本并立即生效。',
    readOnly: '其他设置（只读，在配置文件中修改）', model: '内容模型', internalRelays: '内部邮件服务器', dkimDomains: 'DKIM 签名域',
    pk_thresholds: '阈值', pk_actions: '处置', pk_allow: '允许名单', pk_block: '阻止名单', pk_domains: '按域', pk_policy: '按域策略', pk_domain_policy: '本域策略', pk_scores: '规则分值',
    pk_attachments: '附件策略', pk_blocked: '禁止的文件类型', pk_dlp: 'DLP 策略', pk_directions: '方向', pk_senders: '发件人范围', pk_recipient_domains: '收件域范围',
    pk_detect: '检测项', pk_keywords: '关键词', pk_min_keywords: '关键词触发次数', pk_patterns: '正则', pk_min_patterns: '正则触发次数', pk_extensions: '文件类型',
    pk_max_attachment_mib: '附件大小上限', pk_encrypted: '加密附件', pk_uninspectable: '无法检查的附件', pk_action: '动作', pk_approval_hours: '审批时限', pk_name: '名称',
    det_resident_id: '身份证号', det_bank_card: '银行卡号', det_mobile: '手机号', det_credit_code: '统一社会信用代码', det_passport: '护照号',
    det_classification: '密级标志', det_email_address: '邮件地址',
    dlpAction: '处置动作',
    tab_policy: '检测策略', tab_attachments: '附件策略', tab_dlp: '外发防泄漏（DLP）',
    blockedTypes: '禁止的文件类型（每行一个扩展名）', addExecutables: '加入常见可执行与镜像类型',
    blockedHelp: '入站邮件中带有这些类型文件的，按病毒处置（当前为“{action}”，在检测策略中修改）。既按文件名判断（包括压缩包内、以及加密压缩包中仍可读出的文件名），也按文件的真实类型判断：例如禁止 exe 后，改名为 .txt 的 Windows 程序同样被拦截。zip 与 Office 文档同为 zip 格式，只按文件名判断。',
    attachRules: '附件检查规则', attachRulesHelp: '附件检查（可执行文件、双扩展名、宏、加密压缩包、压缩炸弹等）命中时加的分：关闭即记 0 分，只保存与规则文件不同的值。',
    notUsed: '不使用', newDlpPolicy: '新策略', dlpSenders: '适用的发件人（每行一个地址或 @域名，留空为所有人）', dlpDomains: '适用的收件域（每行一个，含子域，留空为所有收件人）',
    dlpDetect: '敏感信息数量（同一邮件中不同号码的个数达到即触发，留空为不检测）', dlpKeywords: '关键词（每行一个，不区分大小写）', dlpMinKeywords: '关键词出现次数达到',
    dlpPatterns: '正则表达式（每行一个，线性时间语法，不支持环视）', dlpMinPatterns: '正则匹配次数达到', dlpExtensions: '文件类型（扩展名，空格分隔，含压缩包内）',
    dlpMaxMib: '单个附件大于（MiB）', dlpEncrypted: '带有加密（无法打开）的压缩包或文档即触发', dlpUninspectable: '有无法读取的附件或内容被截断即触发',
    dlpMultiline: '含多行正则（来自配置文件），此处不可编辑，保存时原样保留。', dlpRemove: '删除此策略', confirmDlpRemove: '删除策略“{name}”？保存后生效。', dlpAdd: '新增策略', uninspectable: '无法检查',
    dlpHelp: '外发和内部邮件按这些策略检查：满足任一条件即触发；多条策略同时触发时取最严格的动作（拒绝 > 暂扣待审批 > 放行并记录）。检查结果只记录数量和打码样例，不保存敏感内容。保存后对之后的邮件立即生效。',
    dlpNone: '尚未设置 DLP 策略：外发邮件不做数据防泄漏检查。',
    added: '（新增）', removed: '（删除）', domainScope: '本页只含 {d} 的策略；未单独设置的项沿用全局设置：',
    select: '选择', selectFirst: '请先选择', releaseSelected: '放行所选', deleteSelected: '删除所选',
    confirmBulkRelease: '确定放行所选的 {n} 封邮件？其中 {risky} 封为钓鱼、病毒、诈骗或高分邮件。', confirmBulkDelete: '确定删除所选的 {n} 封邮件？删除后无法恢复。',
    bulkReleased: '已放行 {n} 封。', bulkDeleted: '已删除 {n} 封。', releaseAllow: '放行并信任发件人',
    senderAllowed: '发件人 {s} 已加入允许名单。', confirmDanger: '该邮件被判定为{cls}（分数 {score}）。确定放行给所选收件人？',
    envelope: '信封发件人', cls_refused: '部分收件人拒收', cls_dlp: '外发待审批', cls_account: '风险账户暂扣',
    ev_queued: '已接收入队', ev_quarantined: '已隔离', ev_discarded: '已丢弃', ev_rejected: '已拒收', ev_delivered: '已投递',
    ev_deferred: '暂时失败，将重试', ev_bounced: '投递失败，已退信', ev_released: '已放行', ev_clicked: '点击链接',
    fromDate: '起始日期', toDate: '截止日期', minScore: '分数不低于', sort_newest: '最新在前', sort_oldest: '最早在前', sort_score: '分数从高到低', sort_expiry: '即将过期在前',
    prevPage: '上一页', nextPage: '下一页', pageOf: '第 {at} / {pages} 页，共 {total} 封', verdict: '判定',
    idSearch: '队列 ID（开头）或 Message-ID', allClasses: '全部类别', allDirections: '全部方向', timeline: '处理过程',
    cls_clean: '正常',
    onetimeTitle: '{name} 的一次性密码', copy: '复制', onetimeHelp: '此密码只显示这一次，请现在通过安全渠道交给本人；首次登录时必须修改。',
    confirmReset: '确定重置 {name} 的密码？其当前密码立即失效，并生成新的一次性密码。', confirmDeleteAccount: '确定删除账号 {name}？此操作无法撤销。',
    confirmUnlock: '确定解锁 {name}？', newAccount: '新建账号',
    passwordRules: '密码规则：至少 {n} 个字符，包含大写字母、小写字母、数字和符号中的至少三类；连续 5 次输错将锁定 30 分钟。',
    totpCode: '动态验证码（6 位）', totpNeeded: '密码正确。请输入身份验证器 App 中的 6 位动态验证码。', totpTitle: '两步验证（动态验证码）',
    totpOn: '已启用：登录时需要密码和身份验证器 App 中的动态验证码。', totpOff: '未启用。启用后，登录时除密码外还需输入手机身份验证器 App（如 Microsoft Authenticator、Google 身份验证器、FreeOTP）中的 6 位动态验证码。',
    totpStart: '启用两步验证', totpScan: '用身份验证器 App 扫描二维码（或手动输入下方密钥），再输入 App 显示的 6 位验证码以确认：',
    totpSecret: '密钥：', totpConfirm: '确认启用', totpEnabled: '两步验证已启用。', totpRemove: '停用两步验证', totpRemoved: '两步验证已停用。',
    confirmTotpOff: '确定停用两步验证？之后只凭密码即可登录。', mySecurity: '密码与两步验证',
    chartsUnavailable: '图表库未能加载', range: '时间范围', range_24h: '最近 24 小时', range_7d: '最近 7 天', range_30d: '最近 30 天',
    received: '收到邮件', stopped: '已拦截', byClass: '按类别统计', flowOver: '邮件流量（按类别）', classShare: '类别占比',
    delivery: '投递与队列', queueActive: '待投递（队列）', queueHeld: '隔离中', topSenderDomains: '被拦截最多的发件域', mailCount: '邮件数',
    confirmUpgrade: '确定上传并升级？校验通过后网关将重启并试运行新版本。', yes: '是', no: '否', basics: '基本信息',
    smtpListen: 'SMTP 监听地址', consoleListen: '控制台地址', starttlsOn: 'STARTTLS', scanOn: '威胁检测', nextHop: '下一跳',
    port: '端口', allOtherDomains: '其他所有域', running: '运行版本', currentRelease: '已安装版本', factory: '出厂版本',
    previousRelease: '可回退到', onTrial: '试运行中', trialStarts: '已启动 {n} 次', lastRollback: '最近一次回退',
    vendorKeys: '受信任的厂商密钥', noTrust: '未配置：{f} 不存在。请以 root 身份写入厂商的信任行（jianmen upgrade trust-line）后再上传升级包。',
    auditNames: { 'account.create': '创建账号', 'account.delete': '删除账号', 'account.reset': '重置密码', 'account.unlock': '解锁账号',
      'audit.export': '导出审计包', 'audit.verify': '校验审计链', 'channel.activate': '启用发信通道', 'channel.drain': '停用发信通道',
      'dkim.keygen': '生成 DKIM 密钥', 'drill.create': '创建钓鱼演练', 'drill.state': '变更演练状态', 'drill.template': '保存演练模板',
      'intel.import': '导入威胁情报', 'intel.recall': '按情报召回', 'login.code_needed': '登录：等待动态验证码', 'login.fail': '登录失败',
      'login.ok': '登录成功', 'model.activate': '启用检测模型', 'model.refuse': '拒绝检测模型', 'password.change': '修改密码',
      'ownlist.add': '添加个人名单条目', 'ownlist.remove': '移除个人名单条目', 'user.login': '用户登录（目录账号）', 'user.login_fail': '用户登录失败（目录账号）', 'policy.restore': '回滚策略', 'policy.save': '保存策略', 'quarantine.delete': '删除隔离邮件', 'quarantine.download': '下载隔离邮件',
      'quarantine.expire': '隔离邮件过期', 'quarantine.headers': '查看邮件头与链接', 'quarantine.preview': '预览隔离邮件', 'quarantine.reject': '拒绝外发', 'quarantine.release': '放行隔离邮件',
      'queue.delete': '删除队列邮件', 'queue.flush': '立即投递队列', 'queue.retry': '重试投递', 'recall.start': '召回邮件', 'recall.undo': '撤销召回',
      'risk.clear': '解除风险账户', 'risk.confirm': '确认账户失陷', 'totp.disable': '停用两步验证', 'totp.enable': '启用两步验证',
      'tls.install': '安装证书', 'tls.remove': '恢复配置的证书', 'tls.request': '生成证书请求',
      'upgrade.apply': '离线升级', 'upgrade.keep': '确认升级', 'upgrade.refuse': '拒绝升级包', 'upgrade.rollback': '回退升级',
      'backup.make': '生成备份', 'backup.fail': '备份失败', 'backup.restore': '从备份恢复',
      'settings.change': '修改系统设置', 'settings.revert': '恢复配置文件的设置', 'system.restart': '重启网关' },
    linksInMessage: '邮件中的链接（仅列出真实地址，不会打开）', linkText: '显示文字', linkTarget: '实际地址', linkMismatch: '文字与地址不符',
    formTargets: '表单提交到：', headerFields: '邮件头（{n} 个字段，其中 Received {r} 个）', headerName: '字段', headerValue: '内容',
    certificates: '证书', certRole: '用途', certSource: '来源', certSubject: '主题', certNames: '名称', certUntil: '有效期至',
    cert_international: '国际 TLS', cert_sm2_signing: 'SM2 签名（RFC 8998、TLCP）', cert_sm2_encryption: 'SM2 加密（TLCP）',
    certGenerated: '启动时自动生成', certIssuer: '颁发者', daysLeft: '剩余 {n} 天', certExpired: '已过期', certExpiring: '即将过期',
    certSelfSigned: '自签名', certHelp: '自签名证书不被客户端信任。可在此生成证书请求（CSR）交 CA 签发后安装，或直接上传 CA 签发的证书与私钥（PEM）或 PKCS#12 文件。安装后 STARTTLS 与控制台立即使用新证书，无需重启。',
    certInstalled: '控制台安装', certInstall: '安装证书', certFile: '证书文件（PEM，或 .p12/.pfx）', certKeyFile: '私钥文件（PEM；使用本机生成的请求时可不选）',
    certPassword: '私钥或 PKCS#12 密码（没有可不填）', certInstallDone: '已安装，新连接即使用此证书。SHA-256 指纹：{f}', certRequest: '生成证书请求',
    certRequestDone: '已生成证书请求（私钥保存在本机）。请将下面的 CSR 交 CA 签发，再在上方只选择签发的证书文件安装。', certDownload: '下载 CSR',
    certRemove: '恢复配置的证书', confirmCertRemove: '删除控制台安装的“{role}”证书，改用配置文件中的（或自动生成的）证书？',
    confirmCertInstall: '用所选证书替换“{role}”证书？新连接将立即使用它。', certRequestPending: '等待签发',
    certWarn_name_mismatch: '证书中的名称不包含本机主机名 {hostname}。', certWarn_expires_soon: '证书将在 {days} 天内过期。',
    certWarn_self_signed: '这是自签名证书，客户端默认不信任。', certWarn_chain_order: '证书链顺序不对（每张应由下一张签发）。',
    err_cert_too_large: '文件过大（证书链最多 10 张，文件最大 256 KiB）。', err_cert_unreadable: '无法读取证书：不是 PEM 格式的 X.509 证书。',
    err_cert_key: '无法读取私钥（PEM 格式；加密的私钥需填写密码）。', err_cert_pkcs12: '无法打开 PKCS#12 文件（密码错误或文件中没有私钥和证书）。',
    err_cert_mismatch: '私钥与证书不匹配。', err_cert_dates: '证书不在有效期内（已过期或尚未生效）。',
    err_cert_unsuitable: '证书不适合此用途（国密用途须为 SM2 证书；TLCP 加密证书须允许密钥加密；服务器证书须允许服务器认证）。',
    err_cert_no_request: '请同时选择私钥文件，或先在本机生成证书请求。', err_cert_not_installed: '此用途没有控制台安装的证书。',
    err_cert_request_pending: '此用途已有等待签发的证书请求。', confirmCertReplaceRequest: '“{role}”已有等待签发的请求。生成新请求会丢弃旧请求的私钥，CA 按旧请求签发的证书将无法安装。继续？',
    certNotPem: '无法识别的文件：请选择 PEM 格式的证书（DER 格式请先用 openssl x509 -inform der 转换）或 .p12/.pfx 文件。',
    err_unauthorized: '未登录或会话已过期，请重新登录。', err_forbidden: '无权执行此操作', err_role: '当前角色无权执行此操作。',
    err_csrf: '页面已过期，请刷新后重试。', err_must_change: '请先修改初始密码。', err_internal: '内部错误，请查看网关日志。',
    err_credentials: '用户名或密码错误。', err_totp_needed: '请输入身份验证器 App 中的 6 位动态验证码。', err_source: '不允许从此地址登录控制台。',
    err_too_many: '此地址登录失败次数过多，请稍后再试。', err_busy: '登录请求过多，请稍后再试。',
    err_weak_password: '密码不符合规则：至少 {n} 个字符，包含大写字母、小写字母、数字和符号中的至少三类，且不能包含用户名。',
    err_totp_wrong: '验证码不正确（请检查手机时间，或等待下一个验证码）。', err_no_account: '没有这个账号。', err_account_exists: '该账号已存在。',
    err_last_of_role: '这是该角色的最后一个账号，请先创建另一个。', err_not_yours: '该类账号只能在设备上用 jianmen account 命令管理（三权分立）。',
    err_no_item: '没有这封邮件（或不在你管理的域内）。', err_item_done: '这封邮件已被处理（已放行、删除或过期）。',
    err_policy_conflict: '策略已被他人修改，请重新载入后再编辑。', err_unchanged: '没有任何改动。',
    ownLists: '个人黑白名单', ownListsHelp: '收件人自己的名单，只作用于发给该收件人的那一份邮件：白名单 −10 分（不会放过病毒和证据充分的钓鱼），黑名单 +30 分（优先于组织白名单）。收件人可通过隔离摘要中的链接自行维护；此处修改立即生效并记入审计。',
    ownerSearch: '收件人地址（前缀）', findOwners: '查找', ownerAddr: '收件人', allowCount: '白名单条目', blockCount: '黑名单条目',
    openOwner: '打开或新建', ownEntries: '{owner} 的个人名单', listKind: '名单', list_allow: '白名单', list_block: '黑名单', entry: '条目',
    addedAt: '添加时间', addedBy: '添加人', addEntries: '添加条目（每行一个：地址、@域名、域名、IP 或 CIDR）', addToList: '添加',
    err_field: '“{f}”填写有误：{why}', why_thresholds: '阈值须为正数，且高分垃圾邮件阈值不低于垃圾邮件阈值。', why_entries: '条目超过 {x} 条。',
    why_entry: '不是 IP、CIDR 网段、邮件地址或域名：{x}', why_not_protected: '“{x}”不是受保护的域。', why_two_policies: '“{x}”有两条按域策略。',
    why_points: '分值须在 −100 到 100 之间。', why_symbol: '没有规则或检查产生这个符号。', why_symbol_name: '符号名只能包含大写字母、数字和下划线。',
    why_chars: '最多 {x} 个字符。', why_unknown: '不认识的参数。', why_variant: '不认识的取值“{x}”。',
    why_host: '须为主机名或 IP 地址。', why_hostname: '须为主机名。', why_positive: '须大于 0。', why_route_domain: '须为域名，或用 * 表示其他所有域。',
    why_two_routes: '“{x}”有不止一条路由。', why_one_domain: '至少列出一个域。', why_not_domain: '“{x}”不是域名。', why_host_port: '须为“主机:端口”。',
    why_at_most: '最多 {x} 项。', why_unknown_field: '不认识的参数“{x}”。',
    why_dlp_name: '须有 1 到 100 个字符的名称。', why_dlp_same_name: '有两条策略同名。', why_dlp_directions: '方向须为出站、内部或两者（入站邮件由检测策略判断）。',
    why_dlp_detector: '不认识的检测项“{x}”。', why_dlp_count: '检测项的数量须至少为 1。', why_dlp_terms: '关键词和正则各最多 {x} 条。', why_dlp_empty_keyword: '有一个关键词为空。',
    why_dlp_pattern: '正则表达式 {x} 无法使用（语法错误，或编译后过大）。', why_dlp_hours: '审批时限须为 1 到 2160 小时。',
    why_dlp_condition: '没有触发条件：请至少设置检测项、关键词、正则、文件类型、附件大小、加密或无法检查中的一项。',
    why_dlp_total: '最多 {x} 条策略，全部策略合计最多 {y} 条正则。', why_extension: '“{x}”不是文件扩展名（字母和数字，最多 16 个）。',
    why_no_scanner: '此网关没有运行扫描（scan.enabled = false，且配置文件中没有 DLP 策略），在这里设置的 DLP 策略不会生效：请先在配置文件中启用。',
    clock: '时间与同步', gatewayTime: '网关时间', timeZone: '时区', ntp: '时间同步（NTP）', ntpSynced: '已同步', ntpNotSynced: '未同步',
    ntpOff: '未启用时间同步', ntpUnknown: '无法读取（系统不是由 systemd 管理）', browserSkew: '与本浏览器时间相差',
    skewOk: '{n} 秒', skewWarn: '{n} 秒：请检查网关或本机的时间',
    cluster: '集群节点', clusterNote: '这些节点共用一个 PostgreSQL 数据库：控制台账号、会话和审计日志在所有节点通用。', thisNode: '本节点',
    nodeName: '节点', nodeAddress: '地址', nodeVersion: '版本', nodeStarted: '启动时间', nodeHeartbeat: '最近心跳', nodeState: '状态',
    nodeAlive: '运行中', nodeGone: '失联', clusterUnreachable: '读不到集群数据库：',
    consoleMoved: '网关正在重启，控制台将在新地址提供服务：', smtpListenSet: 'SMTP 监听地址（每行一个“IP:端口”）', consoleListenSet: '控制台监听地址（IP:端口）',
    listenHelp: '监听地址在重启后生效。1024 以下的端口只能用 25、465、587（SMTP）和 443（控制台）。若重启时新地址无法监听（本机没有该地址或端口被占用），网关按配置文件的设置启动并在此说明原因。修改控制台地址后，请在新地址打开控制台。',
    'pk_smtp.listen': 'SMTP 监听地址', 'pk_console.listen': '控制台监听地址',
    why_listen_port: '端口 {x} 低于 1024，且不是允许的端口。', why_listen_twice: '{x} 重复使用。', why_listen_local: '{x} 不是本机的地址。', why_listen_in_use: '{x} 已被其他程序占用。',
    why_at_most_addresses: '最多 {x} 个地址。', why_socket: '须为“IP:端口”，如 0.0.0.0:25 或 [::]:25。',
    domainsRoutes: '受保护的域、路由、日志外送与监听地址', protectedDomains: '受保护的域（每行一个）', syslogTarget: '审计日志 syslog 外送（主机:端口，留空为不外送）',
    routeAdd: '添加路由', routeRemove: '移除', settingsSave: '保存设置', settingsRevert: '恢复为配置文件的设置', settingsSaved: '已保存。',
    confirmSettingsRevert: '放弃控制台修改的设置，恢复为配置文件中的设置（重启后生效）？', confirmRestart: '现在重启网关？正在进行的会话会先完成，已接收的邮件不会丢失。',
    settingsFromFile: '当前使用配置文件中的设置。', settingsFromConsole: '{who} 于 {at} 在控制台修改了{keys}；其余沿用配置文件。',
    settingsRefused: '控制台修改的设置与配置文件冲突，未生效，运行的是配置文件的设置：{why}', settingsListenersRefused: '控制台设置的监听地址在启动时无法使用，运行的是配置文件中的监听地址（其余设置已生效）：{why}', settingsPending: '设置已保存，重启网关后生效。',
    restartNow: '立即重启网关', restartByHand: '此网关不由 systemd 管理，请在设备上重启它。', restarting: '正在重启网关…', restarted: '网关已重启。',
    restartSlow: '网关尚未恢复响应，请稍后刷新页面。', routeDomainHint: '域名，或 * 表示其他所有域',
    setKeys: { protected: '受保护的域', routes: '路由', syslog: 'syslog 外送', smtp_listen: 'SMTP 监听地址', console_listen: '控制台监听地址' }, tlsPolicies: { 'verify-if-offered': '对方提供则校验证书（默认）', verify: '必须 TLS 并校验证书',
      required: '必须 TLS（不校验证书）', opportunistic: '尽量使用 TLS（不校验）', tlcp: '国密 TLCP', none: '不加密' },
    'pk_domains.protected': '受保护的域', pk_route: '路由', pk_host: '下一跳', pk_tls: 'TLS 策略', 'pk_audit.syslog': 'syslog 外送', err_not_supervised: '此网关不由 systemd 管理，请在设备上重启它。',
    backupClustered: '本网关在集群模式下运行：控制台账号、会话和审计日志在共享的 PostgreSQL 数据库中，不在此备份内，请用 PostgreSQL 的工具（pg_dump、持续归档）备份该数据库。',
    backup: '备份与恢复', backupHelp: '备份包含配置文件及其所在目录中的文件、密钥（邮件存储加密、DKIM、链接签名）、在控制台安装的证书和各项设置（受保护的域与路由、策略版本、个人名单、演练模板、控制台账号），不含邮件和日志。备份文件用下面的口令加密（Argon2id 派生密钥，SM4-GCM 加密），没有口令就无法恢复：请把口令与备份分开保管。',
    backupPass: '备份口令（至少 12 个字符）', backupPass2: '再次输入口令', backupDownload: '生成并下载备份', backupMaking: '正在生成备份…',
    backupMismatch: '两次输入的口令不一致。', backupDone: '已下载 {f}：{n} 个文件。', backupOutside: '配置中引用的 {n} 个文件不在配置目录内，未包含在备份中，请另行保存（详见审计日志）。',
    restoreCommand: 'systemctl stop jianmen\njianmen restore --from <备份文件.jbk> --passphrase-file <口令文件> [--configuration]\nsystemctl start jianmen',
    restoreHelp: '恢复只能在设备上以 root 执行，且须先停止网关。备份中的配置文件默认写入配置目录下的 restored-<时间> 目录供核对，核对无误后加 --configuration 写回原处：', err_backup_passphrase: '备份口令至少需要 12 个字符。',
    ownNotApplied: '威胁检测未开启（scan.enabled），个人名单会保存但不会作用于邮件。', ownAdded: '已添加 {n} 条新条目。', remove: '移除', ownRemoved: '已移除。', confirmOwnRemove: '从 {owner} 的{list}中移除“{entry}”？',
    err_own_owner: '不是受保护域的邮件地址（或不在你管理的域内）。', err_own_full: '名单已满：每个收件人最多 500 条。', err_list_entry: '条目格式不正确：应为地址、@域名、域名、IP 或 CIDR。',
  },
  en: {
    dashboard: 'Dashboard', quarantine: 'Quarantine', tracking: 'Tracking', policy: 'Policy',
    system: 'System', accounts: 'Accounts & roles', audit: 'Audit log', logout: 'Sign out',
    login: 'Sign in', username: 'User name', password: 'Password', signin: 'Sign in',
    changePassword: 'Change password', currentPassword: 'Current password',
    newPassword: 'New password', save: 'Save',
    mustChange: 'First sign-in: please change your password.', search: 'Search',
    sender: 'Sender', rcpt: 'Recipient', subject: 'Subject', class: 'Class', score: 'Score',
    time: 'Time', status: 'Status', reason: 'Reason', release: 'Release',
    releaseNotSpam: 'Release as not spam', delete: 'Delete', download: 'Download .eml',
    back: 'Back', released: 'Released', deleted: 'Deleted', evidence: 'Evidence',
    symbol: 'Symbol', detail: 'Detail', history: 'History', event: 'Event',
    clientIp: 'Client IP', queueId: 'Queue ID', all: 'All', held: 'Held', total: 'Total',
    items: 'items', noItems: 'Nothing found',
    topSenders: 'Most-stopped senders', topTargets: 'Most targeted recipients', role: 'Role',
    domain: 'Domain', created: 'Created', lastLogin: 'Last sign-in', locked: 'Locked until',
    create: 'Create', reset: 'Reset password', unlock: 'Unlock',
    initialPassword: 'Initial password (shown once)', atAppliance: 'Security and audit administrator accounts are created, reset and deleted only at the appliance, as root, with jianmen account (separation of duties); the security administrator manages per-domain administrators here.', verify: 'Verify integrity',
    export: 'Export signed package',
    intact: 'Audit chain intact', broken: 'Audit chain broken', actor: 'Actor',
    action: 'Action', confirmDelete: 'Delete this message?',
    roles: { system: 'System administrator', security: 'Security administrator', audit: 'Audit administrator' },
    preview: 'Preview (sanitised, remote content blocked)', thresholds: 'Thresholds',
    protectedDomains: 'Protected domains', queue: 'Queue', version: 'Version',
    hostname: 'Host name', routes: 'Routes', retention: 'Quarantine retention (days)',
    upgrade: 'Offline upgrade', upgradePackage: 'Package (.jup, signed by a trusted vendor key)',
    upgradeApply: 'Upload and upgrade', upgradeSending: 'Uploading and verifying…',
    upgradeStarted: 'Verified; the gateway restarts on trial (it rolls back if the health check fails): ',
    approve: 'Approve', reject: 'Reject', approved: 'Approved and delivered', rejected: 'Rejected; the sender was told',
    confirmReject: 'Reject this message? The sender gets a notice (without the message content).',
    approvals: 'Approvals', expired: 'Expired',
    direction: 'Direction', inbound: 'Inbound', outbound: 'Outbound', internal: 'Internal',
    expires: 'Expires', name: 'Name',
    approvalHours: 'Approval within (hours)', keywords: 'keywords',
    patterns: 'patterns', encrypted: 'encrypted attachments', dlp_log: 'Deliver and log',
    dlp_hold: 'Hold for approval', dlp_block: 'Refuse',
    risk: 'Account risk', account: 'Account', level: 'Containment', volume24h: 'Messages, last 24 h',
    explanation: 'Why', since: 'Since', lastSent: 'Last sent', messages: 'Messages seen', heldMail: 'Held mail',
    level_normal: 'Normal', level_alert: 'Alert', level_throttled: 'Throttled', level_held: 'Held for review', level_blocked: 'Blocked',
    clear: 'Clear (false alarm)', confirmCompromise: 'Confirm compromise', cleared: 'Cleared; its held mail was released',
    confirmed: 'Compromise confirmed; sending blocked and held mail deleted',
    confirmClear: 'Clear this account? It sends again, its held mail is delivered, and its profile learns this behaviour.',
    confirmConfirm: 'Confirm the compromise? The account is blocked from sending and its held mail is deleted. Reset its password at the mail server too.',
    reason_volume: '{messages} messages in 1 h (usual {usual})',
    reason_new_recipients: '{percent}% of {rcpts} recipients in 1 h never contacted (usual {usual_percent}%)',
    reason_flagged: '{flagged} of {messages} messages in 1 h judged spam or phishing',
    reason_new_network: 'from {network} (new)', reason_odd_hour: 'at an hour it never sends',
    reason_past_throttle: '{tried} more messages tried past the throttle ({per_hour} an hour)',
    riskIntro: 'Internal accounts scored by their sending behaviour (volume, unknown recipients, new client addresses, mail judged spam or phishing); above the policy thresholds they are alerted, throttled, held or blocked automatically.',
    channels: 'Delivery channels', kind: 'Kind', kind_source: 'Source address', kind_socks5: 'SOCKS5 relay node',
    kind_smarthost: 'Smart host', egress: 'Egress address', state: 'State', state_active: 'Active',
    state_reserve: 'Reserve', state_listed: 'Block-listed', state_down: 'Down', state_drained: 'Drained',
    promoted: 'reserve standing in', listings: 'Block lists', successRate: 'Success rate', delivered: 'Delivered',
    deferred: 'Passed on / deferred', inFlight: 'Under way', recentErrors: 'Recent errors',
    refusals: 'Block-list refusals', drain: 'Drain', activate: 'Activate',
    drainedNow: 'Drained; its mail takes the other channels', activatedNow: 'Activated',
    confirmDrain: 'Drain this channel? Its mail will take the other channels.', watchedLists: 'Block lists watched',
    passiveOnly: 'none (judged by destinations\' block-list refusals only)', from: 'From', to: 'To',
    recall: 'Recall', hunt: 'Find delivered mail', term: 'Find by', term_sha256: 'Attachment SHA-256', term_url: 'Link',
    term_domain: 'Link domain', term_sender: 'Sender', term_message_id: 'Message-ID', term_queue_id: 'Queue ID',
    value: 'Value', recipients: 'Recipients', recallIt: 'Recall', recallReason: 'Reason (kept in the audit log)',
    confirmRecall: 'Recall this message from every recipient\'s mailbox?', recalls: 'Recalls', progress: 'Progress',
    undo: 'Undo (put back where it was)', undone: 'Putting back', mailbox: 'Mailbox', folders: 'Taken from',
    recallIntro: 'Find mail delivered into this organisation\'s mailboxes by attachment hash, link, domain, sender or Message-ID, and recall it from every recipient\'s mailbox at once (moved to a hidden recall folder; can be undone).',
    drills: 'Phishing drills', drillsIntro: 'Send simulated phishing mail to chosen people and count who opened, clicked, submitted the form (only that they did: nothing typed is ever received or kept) and reported it, per department and across drills. Drill mail is delivered without this gateway\'s checks.',
    newDrill: 'New drill', template: 'Template', fromName: 'Sender name', fromAddress: 'Sender address',
    targetsCsv: 'People (CSV: email,name,department)', startAt: 'Start', ratePerMinute: 'Per minute',
    createDrill: 'Create', schedule: 'Start sending', pause: 'Pause', exportCsv: 'Export CSV', printReport: 'Print report',
    dstate_draft: 'Draft', dstate_scheduled: 'Sending', dstate_paused: 'Paused', dstate_done: 'Sent',
    targets: 'People', sent: 'Sent', opened: 'Opened', clicked: 'Clicked', submitted: 'Submitted', reported: 'Reported',
    medianClick: 'Median time to click', department: 'Department', trend: 'Clicks, submissions and reports across drills', preview: 'Preview', rate: 'Rate',
    editTemplate: 'Edit a template', templateHelp: 'Start from the chosen template and save it as a custom one. Placeholders: {{name}} {{email}} {{department}} {{link}} (required) {{date}}.',
    landingTitle: 'Landing page title', saveTemplate: 'Save as a custom template', saved: 'Saved',
    links: 'Safe links', linksIntro: 'Web links in inbound mail are rewritten to signed links through this gateway; at each click the address is judged again against the block lists, threat intelligence and look-alike checks of that moment: safe links go straight on, dangerous ones show a warning page. Every click is tracked; a link that turned dangerous after delivery alerts the administrators and, by policy, recalls the message.',
    linksOff: 'Off (set [links] enabled = true)', baseUrl: 'Link service', skipDomains: 'Never rewritten',
    maxAgeDays: 'Links work (days)', onBad: 'Dangerous links', onBad_warn: 'Warn, may continue', onBad_block: 'Warn and block',
    notifyTo: 'Notify', recallOnBad: 'Recall automatically', perRcptMax: 'Per-recipient copies up to', clicks: 'Recent clicks',
    yes: 'Yes', no: 'No',
    intel: 'Threat intel', intelIntro: 'STIX indicators (file hashes, links, domains, senders, IP addresses) are polled from TAXII 2.1 sources or imported from a STIX file (for sites without a feed). They refuse new mail at once (at SMTP time) and are hunted for among delivered mail, which is recalled at once or proposed for recall, by policy. Indicators stop counting when they expire (valid_until) or are revoked.',
    sources: 'Sources', lastPoll: 'Last poll', lastOk: 'Last success', received: 'Received', unusable: 'Unusable',
    cursor: 'Polled up to', inForce: 'Observables in force', onMatch: 'When delivered mail matches',
    onMatch_recall: 'Recall at once', onMatch_propose: 'Propose recall', indicators: 'Indicators', observables: 'Observables',
    validUntil: 'Valid until', noEnd: 'No end', expired: 'Expired', revoked: 'Revoked', inEffect: 'In force', hits: 'Retro-hunt hits',
    indicator: 'Indicator', hstate_proposed: 'Proposed', hstate_recalling: 'Recall started', hstate_failed: 'Recall failed',
    importIntel: 'Import a STIX 2.1 file (JSON)', importApply: 'Import',
    imported: 'Imported: {new} new or changed, {unchanged} unchanged, {skipped_count} unusable, {hits} delivered messages found',
    openRecall: 'Open recall',
    rstate_pending: 'Waiting', rstate_working: 'Recalling', rstate_recalled: 'Recalled', rstate_absent: 'Not in the mailbox',
    rstate_failed: 'Failed', rstate_restoring: 'Putting back', rstate_restored: 'Put back', rstate_restore_failed: 'Put-back failed',
    channelsIntro: 'Mail to the internet leaves by several channels: each destination gets the channel with the best record there; a failed connection, a timeout, a deferral or a block-list refusal passes the mail to the next channel at once. Every channel\'s egress address is looked up in block lists; a listed channel leaves rotation, a reserve takes its place and the administrators are told; once delisted and clean for the hold-down it returns by itself.',
    pol_version: 'In force: version {n} · {who} · {at}', src_file: 'configuration file', src_console: 'console',
    cls_spam: 'Spam', cls_spam_high: 'High-scoring spam', cls_phish: 'Phishing', cls_bec: 'Business email compromise',
    cls_virus: 'Virus', cls_unscannable: 'Not fully inspected', cls_other: 'Other',
    act_deliver: 'Deliver', act_tag: 'Tag subject, deliver', act_quarantine: 'Quarantine', act_reject: 'Reject (550)', act_discard: 'Accept and drop',
    thresholdsHelp: 'A message whose score reaches a threshold is of that class; high-scoring spam must not be below spam.',
    rulesTitle: 'Rule switches and points', rulesHelp: 'Points each rule (detection symbol) adds when it fires; negative points are evidence of legitimate mail. Off counts 0; only values that differ from the rule files are saved, in force for the next message.',
    ruleFilter: 'Filter by name or meaning', ruleChangedOnly: 'Changed only', ruleOn: 'Turn {s} on', rulePoints: 'Points of {s}', ruleName: 'Rule',
    ruleCategory: 'Category', ruleDescription: 'Meaning', ruleDefault: 'Default', ruleScore: 'Points', ruleEnabled: 'On',
    rulesChanged: '{n} rules, {c} changed', noRules: 'Detection is off: there are no rules to adjust.', cls_ham: 'Evidence of legitimate mail',
    actionsTitle: 'Actions', allowList: 'Allow list', blockList: 'Block list',
    listHelp: 'One per line: an address, @domain, IP or CIDR range. Block wins over allow.', entries: '{n} entries',
    exportList: 'Export', importList: 'Import from a file (appends)', domainPolicies: 'Per-domain policies',
    ownPolicy: 'Own policy for this domain', inheritThresholds: 'Thresholds as the global ones', inheritActions: 'Actions as the global ones',
    comment: 'Why', savePolicy: 'Save and apply now', confirmPolicy: 'Save as a new version and apply it to mail received from now on?',
    policySaved: 'Saved as version {n}, in force.', policyVersions: 'Versions', changes: 'Changes', setting: 'Setting',
    before: 'Before', after: 'After', rollback: 'Roll back to this version', confirmRollback: 'Roll back to version {n}? It is saved as a new version and applied at once.',
    readOnly: 'Other settings (read-only, set in the configuration file)', model: 'Content model', internalRelays: 'Internal mail servers', dkimDomains: 'DKIM signing domains',
    pk_thresholds: 'thresholds', pk_actions: 'actions', pk_allow: 'allow list', pk_block: 'block list', pk_domains: 'domain', pk_policy: 'domain policy', pk_domain_policy: 'domain policy', pk_scores: 'rule points',
    pk_attachments: 'attachment policy', pk_blocked: 'refused file types', pk_dlp: 'DLP policy', pk_directions: 'directions', pk_senders: 'senders', pk_recipient_domains: 'recipient domains',
    pk_detect: 'detects', pk_keywords: 'keywords', pk_min_keywords: 'keyword count', pk_patterns: 'patterns', pk_min_patterns: 'pattern count', pk_extensions: 'file types',
    pk_max_attachment_mib: 'attachment size limit', pk_encrypted: 'encrypted attachments', pk_uninspectable: 'uninspectable attachments', pk_action: 'action', pk_approval_hours: 'approval within', pk_name: 'name',
    det_resident_id: 'Resident ID numbers', det_bank_card: 'Bank card numbers', det_mobile: 'Mobile numbers', det_credit_code: 'Unified social credit codes', det_passport: 'Passport numbers',
    det_classification: 'Classification markings', det_email_address: 'E-mail addresses',
    dlpAction: 'Action',
    tab_policy: 'Detection', tab_attachments: 'Attachments', tab_dlp: 'Data-leak prevention (DLP)',
    blockedTypes: 'Refused file types (one extension a line)', addExecutables: 'Add common program and disk-image types',
    blockedHelp: 'Inbound mail carrying a file of these types is handled as a virus (now “{action}”, set under Detection). Files are judged by name (also inside archives, and by the names an encrypted archive still shows) and by what they really are: refusing exe also refuses a Windows program renamed .txt. Zip is also the container of Office documents and is judged by name only.',
    attachRules: 'Attachment checks', attachRulesHelp: 'Points the attachment checks (programs, double extensions, macros, encrypted archives, decompression bombs…) add when they fire: off counts 0; only values that differ from the rule files are saved.',
    notUsed: 'not used', newDlpPolicy: 'New policy', dlpSenders: 'Senders covered (one address or @domain a line; empty: everyone)', dlpDomains: 'Recipient domains covered (one a line, with subdomains; empty: every recipient)',
    dlpDetect: 'Sensitive numbers (fires at this many distinct ones in a message; empty: not checked)', dlpKeywords: 'Keywords (one a line, any case)', dlpMinKeywords: 'Fires at keyword occurrences',
    dlpPatterns: 'Regular expressions (one a line, linear-time syntax, no look-around)', dlpMinPatterns: 'Fires at pattern matches', dlpExtensions: 'File types (extensions, space-separated, also inside archives)',
    dlpMaxMib: 'An attachment larger than (MiB)', dlpEncrypted: 'Fires on an encrypted archive or document (cannot be opened)', dlpUninspectable: 'Fires on an attachment that cannot be read, or text cut short',
    dlpMultiline: 'Holds a pattern of several lines (from the configuration file): kept as it is, not edited here.', dlpRemove: 'Remove this policy', confirmDlpRemove: 'Remove policy “{name}”? It goes when you save.', dlpAdd: 'Add a policy', uninspectable: 'uninspectable',
    dlpHelp: 'Outgoing and internal mail is checked against these policies: any condition fires a policy; when several fire, the strictest action wins (refuse > hold for approval > deliver and log). Only counts and masked samples are recorded, never the data. In force for the next message once saved.',
    dlpNone: 'No DLP policy yet: outgoing mail is not checked for data leaks.',
    added: ' (added)', removed: ' (removed)', domainScope: 'This page holds the policy of {d} only; what it does not set is as the global policy:',
    select: 'Select', selectFirst: 'Select some first', releaseSelected: 'Release selected', deleteSelected: 'Delete selected',
    confirmBulkRelease: 'Release the {n} selected messages? {risky} of them are phishing, viruses, fraud or high-scoring.', confirmBulkDelete: 'Delete the {n} selected messages? This cannot be undone.',
    bulkReleased: '{n} released.', bulkDeleted: '{n} deleted.', releaseAllow: 'Release and trust the sender',
    senderAllowed: 'Sender {s} is on the allow list now.', confirmDanger: 'This message was judged {cls} (score {score}). Release it to the selected recipients?',
    envelope: 'envelope sender', cls_refused: 'Refused for some recipients', cls_dlp: 'Outgoing, awaiting approval', cls_account: 'Held from a risky account',
    ev_queued: 'Received and queued', ev_quarantined: 'Held', ev_discarded: 'Dropped', ev_rejected: 'Refused', ev_delivered: 'Delivered',
    ev_deferred: 'Failed for now, will retry', ev_bounced: 'Failed, bounced', ev_released: 'Released', ev_clicked: 'Link clicked',
    fromDate: 'From', toDate: 'Until', minScore: 'Score at least', sort_newest: 'Newest first', sort_oldest: 'Oldest first', sort_score: 'Highest score first', sort_expiry: 'Expiring soonest first',
    prevPage: 'Previous', nextPage: 'Next', pageOf: 'Page {at} of {pages}, {total} messages', verdict: 'Verdict',
    idSearch: 'Queue id (start) or Message-ID', allClasses: 'All classes', allDirections: 'All directions', timeline: 'Timeline',
    cls_clean: 'Clean',
    onetimeTitle: 'One-time password of {name}', copy: 'Copy', onetimeHelp: 'Shown this once only: hand it to its owner now over a safe channel; it must be changed at first sign-in.',
    confirmReset: 'Reset the password of {name}? Their current password stops working at once and a new one-time password is made.', confirmDeleteAccount: 'Delete the account {name}? This cannot be undone.',
    confirmUnlock: 'Unlock {name}?', newAccount: 'New account',
    passwordRules: 'Passwords: at least {n} characters, with at least three of upper case, lower case, digits and symbols; 5 wrong attempts in a row lock the account for 30 minutes.',
    totpCode: 'One-time code (6 digits)', totpNeeded: 'Password accepted. Enter the 6-digit code from your authenticator app.', totpTitle: 'Two-step sign-in (one-time codes)',
    totpOn: 'On: signing in needs the password and a code from your authenticator app.', totpOff: 'Off. When on, signing in needs, besides the password, the 6-digit code of an authenticator app on your phone (Microsoft Authenticator, Google Authenticator, FreeOTP…).',
    totpStart: 'Turn on two-step sign-in', totpScan: 'Scan the QR code with your authenticator app (or type the key below), then enter the 6-digit code it shows to confirm:',
    totpSecret: 'Key:', totpConfirm: 'Confirm', totpEnabled: 'Two-step sign-in is on.', totpRemove: 'Turn off two-step sign-in', totpRemoved: 'Two-step sign-in is off.',
    confirmTotpOff: 'Turn off two-step sign-in? The password alone will then sign you in.', mySecurity: 'Password and two-step sign-in',
    chartsUnavailable: 'The chart library did not load', range: 'Time range', range_24h: 'Last 24 hours', range_7d: 'Last 7 days', range_30d: 'Last 30 days',
    received: 'Received', stopped: 'Stopped', byClass: 'By class', flowOver: 'Mail flow by class', classShare: 'Share of classes',
    delivery: 'Delivery and queue', queueActive: 'Waiting in the queue', queueHeld: 'Held', topSenderDomains: 'Most-stopped sender domains', mailCount: 'Messages',
    confirmUpgrade: 'Upload and upgrade? Once verified, the gateway restarts on the new version, on trial.', yes: 'yes', no: 'no', basics: 'Basics',
    smtpListen: 'SMTP listens on', consoleListen: 'Console address', starttlsOn: 'STARTTLS', scanOn: 'Threat scanning', nextHop: 'Next hop',
    port: 'Port', allOtherDomains: 'All other domains', running: 'Running', currentRelease: 'Installed release', factory: 'factory',
    previousRelease: 'Rolls back to', onTrial: 'On trial', trialStarts: 'started {n} times', lastRollback: 'Last rollback',
    vendorKeys: 'Trusted vendor keys', noTrust: 'None: {f} does not exist. As root, put the vendor\'s trust line there (jianmen upgrade trust-line), then upload.',
    auditNames: {},
    linksInMessage: 'Links in the message (real targets listed, never opened)', linkText: 'Text shown', linkTarget: 'Real target', linkMismatch: 'Text and target differ',
    formTargets: 'Forms post to:', headerFields: 'Header fields ({n}, {r} of them Received)', headerName: 'Field', headerValue: 'Value',
    certificates: 'Certificates', certRole: 'Use', certSource: 'Source', certSubject: 'Subject', certNames: 'Names', certUntil: 'Valid until',
    cert_international: 'International TLS', cert_sm2_signing: 'SM2 signing (RFC 8998, TLCP)', cert_sm2_encryption: 'SM2 encryption (TLCP)',
    certGenerated: 'Generated at start', certIssuer: 'issuer', daysLeft: '{n} days left', certExpired: 'Expired', certExpiring: 'Expiring soon',
    certSelfSigned: 'Self-signed', certHelp: 'Clients do not trust self-signed certificates. Make a certificate request (CSR) here for a CA to sign and install what it issues, or upload a certificate and key (PEM) or a PKCS#12 file. STARTTLS and the console serve it from the next connection, without a restart.',
    certInstalled: 'Installed here', certInstall: 'Install a certificate', certFile: 'Certificate file (PEM, or .p12/.pfx)', certKeyFile: 'Private key file (PEM; leave out for a request made here)',
    certPassword: 'Password of the key or PKCS#12 file (if any)', certInstallDone: 'Installed; new connections use it. SHA-256 fingerprint: {f}', certRequest: 'Make a request',
    certRequestDone: 'Request made (its key stays on this gateway). Have a CA sign the CSR below, then install the certificate it issues above, choosing only the certificate file.', certDownload: 'Download the CSR',
    certRemove: 'Serve the configured one', confirmCertRemove: 'Delete the “{role}” certificate installed here and serve the configured (or a generated) one again?',
    confirmCertInstall: 'Replace the “{role}” certificate with the chosen one? New connections use it at once.', certRequestPending: 'Awaiting issue',
    certWarn_name_mismatch: 'The certificate does not name this host ({hostname}).', certWarn_expires_soon: 'The certificate expires within {days} days.',
    certWarn_self_signed: 'It is self-signed: clients do not trust it by default.', certWarn_chain_order: 'The chain is out of order (each should be issued by the next).',
    err_cert_too_large: 'Too large (at most 10 certificates and 256 KiB).', err_cert_unreadable: 'Cannot read the certificate: not a PEM X.509 certificate.',
    err_cert_key: 'Cannot read the private key (PEM; give the password of an encrypted key).', err_cert_pkcs12: 'Cannot open the PKCS#12 file (wrong password, or no key with a certificate in it).',
    err_cert_mismatch: 'The private key does not belong to the certificate.', err_cert_dates: 'The certificate is not valid now (expired or not yet valid).',
    err_cert_unsuitable: 'The certificate does not suit this use (national roles need SM2; TLCP encryption needs key encipherment; server certificates need server authentication).',
    err_cert_no_request: 'Choose the key file too, or make a request here first.', err_cert_not_installed: 'Nothing is installed here for this use.',
    err_cert_request_pending: 'A request for this use still waits for its certificate.', confirmCertReplaceRequest: 'A request for “{role}” still waits for its certificate. A new request discards the old one\'s key: a certificate a CA issues for the old request could not be installed. Go on?',
    certNotPem: 'Unrecognised file: choose a PEM certificate (convert DER with openssl x509 -inform der) or a .p12/.pfx file.',
    ownLists: 'Personal allow and block lists', ownListsHelp: 'A recipient\'s own lists judge only their copy of a message: allow −10 points (never lets a virus or well-evidenced phishing through), block +30 (outweighs the organisation\'s allow list). Recipients keep them through the link in their quarantine digest; changes here apply at once and are audited.',
    ownerSearch: 'Recipient address (prefix)', findOwners: 'Find', ownerAddr: 'Recipient', allowCount: 'Allowed', blockCount: 'Blocked',
    openOwner: 'Open or start', ownEntries: 'Lists of {owner}', listKind: 'List', list_allow: 'Allow', list_block: 'Block', entry: 'Entry',
    addedAt: 'Added', addedBy: 'Added by', addEntries: 'Entries to add (one a line: address, @domain, domain, IP or CIDR)', addToList: 'Add',
    err_field: '{f}: {why}',
    clock: 'Time and synchronisation', gatewayTime: 'Gateway time', timeZone: 'Time zone', ntp: 'Time synchronisation (NTP)', ntpSynced: 'Synchronised', ntpNotSynced: 'Not synchronised',
    ntpOff: 'No time synchronisation', ntpUnknown: 'Unknown (the system is not run by systemd)', browserSkew: 'Difference from this browser',
    skewOk: '{n} s', skewWarn: '{n} s: check the gateway\'s or this computer\'s clock',
    cluster: 'Cluster nodes', clusterNote: 'These nodes share one PostgreSQL database: console accounts, sessions and the audit log hold on every node.', thisNode: 'this node',
    nodeName: 'Node', nodeAddress: 'Address', nodeVersion: 'Version', nodeStarted: 'Started', nodeHeartbeat: 'Last heartbeat', nodeState: 'State',
    nodeAlive: 'Running', nodeGone: 'Not heard from', clusterUnreachable: 'The cluster\'s database cannot be read: ',
    consoleMoved: 'The gateway is restarting; the console will answer at its new address:', smtpListenSet: 'SMTP listens on (one IP:port a line)', consoleListenSet: 'Console listens on (IP:port)',
    listenHelp: 'Listening addresses take effect at the restart. Below 1024 only ports 25, 465, 587 (SMTP) and 443 (console) may be set. When a new address cannot be bound at the restart (not this machine\'s, or a port in use), the gateway starts on the configuration file\'s settings and says why here. After moving the console, open it at its new address.',
    'pk_smtp.listen': 'SMTP listening addresses', 'pk_console.listen': 'console address',
    domainsRoutes: 'Protected domains, routes, log forwarding and listeners', protectedDomains: 'Protected domains (one a line)', syslogTarget: 'Audit log to syslog (host:port; empty: none)',
    routeAdd: 'Add a route', routeRemove: 'Remove', settingsSave: 'Save the settings', settingsRevert: 'Back to the configuration file\'s', settingsSaved: 'Saved.',
    confirmSettingsRevert: 'Drop the settings changed here and use the configuration file\'s (at the next restart)?', confirmRestart: 'Restart the gateway now? Sessions under way finish first; no accepted mail is lost.',
    settingsFromFile: 'The configuration file\'s settings are in use.', settingsFromConsole: '{who} changed {keys} here at {at}; the rest is the configuration file\'s.',
    settingsRefused: 'The settings changed here conflict with the configuration file and are not applied; the file\'s run: {why}', settingsListenersRefused: 'The listening addresses set here could not be bound at start: the configuration file\'s are used (the other settings are in force): {why}', settingsPending: 'Saved: in force once the gateway restarts.',
    restartNow: 'Restart the gateway now', restartByHand: 'No systemd runs this gateway: restart it at the appliance.', restarting: 'Restarting the gateway…', restarted: 'The gateway restarted.',
    restartSlow: 'The gateway does not answer yet: reload the page in a while.', routeDomainHint: 'a domain, or * for every other domain',
    setKeys: { protected: 'the protected domains', routes: 'the routes', syslog: 'syslog forwarding', smtp_listen: 'the SMTP addresses', console_listen: 'the console address' }, tlsPolicies: { 'verify-if-offered': 'Check the certificate when offered (default)', verify: 'TLS with a checked certificate',
      required: 'TLS, certificate not checked', opportunistic: 'TLS when offered, not checked', tlcp: 'TLCP (national cipher)', none: 'No encryption' },
    'pk_domains.protected': 'protected domains', pk_route: 'route', pk_host: 'next hop', pk_tls: 'TLS policy', 'pk_audit.syslog': 'syslog forwarding', err_not_supervised: 'No systemd runs this gateway: restart it at the appliance.',
    backupClustered: 'This gateway runs in cluster mode: the console accounts, sessions and the audit log are in the shared PostgreSQL database, not in this backup; back that database up with PostgreSQL\'s tools (pg_dump, continuous archiving).',
    backup: 'Backup and restore', backupHelp: 'A backup holds the configuration file and the files in its directory, the keys (spool sealing, DKIM, link signing), the certificates installed here and the settings (domains and routes, policy versions, personal lists, drill templates, console accounts); not mail, not logs. It is sealed with the passphrase below (Argon2id, SM4-GCM) and cannot be restored without it: keep the passphrase apart from the backup.',
    backupPass: 'Passphrase (at least 12 characters)', backupPass2: 'The passphrase again', backupDownload: 'Make and download a backup', backupMaking: 'Making the backup…',
    backupMismatch: 'The two passphrases differ.', backupDone: '{f} downloaded: {n} files.', backupOutside: '{n} files the configuration names lie outside its directory and are not in the backup: keep them yourself (the audit log names them).',
    restoreCommand: 'systemctl stop jianmen\njianmen restore --from <backup.jbk> --passphrase-file <passphrase file> [--configuration]\nsystemctl start jianmen',
    restoreHelp: 'A restore is run at the appliance, as root, with the gateway stopped. The backup\'s configuration files first go to restored-<time> beside the configuration for you to compare; --configuration puts them in place once checked:', err_backup_passphrase: 'The passphrase needs at least 12 characters.',
    ownNotApplied: 'Threat scanning is off (scan.enabled): personal lists are kept but do not act on mail.', ownAdded: '{n} new entries added.', remove: 'Remove', ownRemoved: 'Removed.', confirmOwnRemove: 'Remove “{entry}” from the {list} list of {owner}?',
    err_own_owner: 'Not an address of a protected domain (or not in your domain).', err_own_full: 'The lists are full: at most 500 entries a recipient.', err_list_entry: 'Not an address, @domain, domain, IP or CIDR range.',
  },
};

let lang = localStorage.getItem('jianmen-lang') || 'zh-CN';
let me = null;
const t = (k) => T[lang][k] || k;
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'onclick' || k === 'onsubmit') e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// A server error in the reader's language where the catalogue has its code; a refusal whose
// code is only "forbidden" keeps the server's reason beside it.
function errorText(data) {
  if (!data) return '';
  const said = data.code && T[lang][`err_${data.code}`];
  if (!said && data.field) return fill(t('err_field'), { f: changeKey(data.field.replace(/^scan\./, '').replace(/^dlp\.policy\[/, 'dlp[')), why: whyText(data.error) });
  if (!said) return data.error;
  const text = fill(said, { n: (me && me.password_min_length) || 12 });
  return data.code === 'forbidden' ? `${text}（${data.error}）` : text;
}

// Each navigation (route()) is numbered. A reading (GET) answered after the administrator has
// moved on is dropped — its promise never settles — so a slow page never draws over, or reports a
// failure on, the page shown since. Changes (POST, PUT, DELETE) always complete.
let navSeq = 0;
const superseded = (method, seq) => method === 'GET' && seq !== navSeq;

async function api(method, path, body) {
  const headers = { 'Accept': 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = me ? me.csrf : '';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const seq = navSeq;
  let r, text;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
    text = await r.text();
  } catch (e) {
    if (superseded(method, seq)) return new Promise(() => {});
    throw e;
  }
  if (superseded(method, seq)) return new Promise(() => {});
  const data = text ? JSON.parse(text) : null;
  // A session that ended sends the user back to sign in; the sign-in itself and route()'s own
  // "am I signed in?" probe do not (a probe answered late would undo a sign-in just made).
  if (r.status === 401 && path !== '/api/login' && path !== '/api/session') { me = null; location.hash = '#/login'; }
  if (!r.ok) throw Object.assign(new Error(errorText(data) || r.statusText), { field: data && data.field });
  return data;
}

// Times are shown, and dates typed, in the gateway's one time zone (server.time_zone); before
// sign-in, in the browser's.
const zone = () => (me && me.time_zone) || undefined;
const when = (s) => s ? new Date(s * 1000).toLocaleString(lang, { timeZone: zone() }) : '';
// Seconds east of UTC of that zone at `ms`.
const zoneOffset = (ms) => {
  if (!zone()) return -new Date(ms).getTimezoneOffset() * 60;
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-US', { timeZone: zone(), hourCycle: 'h23', year: 'numeric', month: '2-digit',
    day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).formatToParts(new Date(ms)).map((x) => [x.type, Number(x.value)]));
  return (Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000) / 1000;
};
// A wall-clock time in that zone (`2026-12-06` or `2026-12-06T09:30`) as Unix seconds.
// The offset is looked up twice: first near the time, then at the time found, which is right
// on either side of a daylight-saving change.
const zoneTime = (text) => {
  const asUtc = Date.parse(`${text.length === 10 ? `${text}T00:00` : text}:00Z`);
  const near = Math.floor(asUtc / 1000) - zoneOffset(asUtc);
  return Math.floor(asUtc / 1000) - zoneOffset(near * 1000);
};
// The day after `d` (YYYY-MM-DD), as typed.
const nextDay = (d) => new Date(Date.parse(`${d}T00:00:00Z`) + 86400000).toISOString().slice(0, 10);
// A time the server wrote as text (RFC 3339, UTC) in the reader's time zone; as it came otherwise.
const whenText = (s) => { const d = new Date(s); return Number.isNaN(d.getTime()) ? s : d.toLocaleString(lang, { timeZone: zone() }); };
const main = () => $('main');

function page(title, ...content) {
  main().replaceChildren(el('h1', {}, title), ...content.filter((c) => c !== null && c !== undefined && c !== false));
}

function fail(e) {
  main().append(el('p', { class: 'error', role: 'alert' }, e.message || String(e)));
}

const PAGES = {
  system: ['dashboard', 'system', 'channels', 'accounts'],
  security: ['dashboard', 'approvals', 'risk', 'recall', 'intel', 'links', 'drills', 'quarantine', 'tracking', 'policy', 'accounts'],
  audit: ['audit'],
};

// A per-domain administrator manages no accounts: its delegates are made by the security
// administrator of all domains.
function pagesOf(account) {
  return PAGES[account.role].filter((p) => !['accounts', 'approvals', 'risk', 'channels', 'recall', 'intel', 'links', 'drills'].includes(p) || !account.domain);
}

function renderChrome() {
  $('lang').textContent = lang === 'zh-CN' ? 'English' : '中文';
  document.documentElement.lang = lang;
  $('logout').textContent = t('logout');
  $('logout').hidden = !me;
  $('who').textContent = me ? `${me.account.name} · ${t('roles')[me.account.role]}` : '';
  const nav = $('nav');
  nav.replaceChildren();
  if (!me || me.account.must_change) return;
  const current = location.hash.split('/')[1];
  for (const p of pagesOf(me.account)) {
    nav.append(el('a', { href: `#/${p}`, class: p === current ? 'active' : null }, t(p)));
  }
  nav.append(el('a', { href: '#/password', class: current === 'password' ? 'active' : null }, t('mySecurity')));
}

function loginPage() {
  const err = el('p', { class: 'error', role: 'alert' });
  // Shown once the password was right for an account with a second factor.
  const code = el('div', { id: 'totp-step', hidden: true },
    el('label', { for: 'totp' }, t('totpCode')), el('input', { id: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6, pattern: '[0-9]{6}' }));
  const form = el('form', { class: 'card login', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      me = await api('POST', '/api/login', { username: $('username').value, password: $('password').value, ...(code.hidden ? {} : { totp: $('totp').value }) });
      location.hash = me.account.must_change ? '#/password' : `#/${PAGES[me.account.role][0]}`;
      route();
    } catch (e) {
      if (e.field === 'totp' && code.hidden) { code.hidden = false; err.textContent = t('totpNeeded'); $('totp').focus(); return; }
      err.textContent = e.message;
    }
  } },
  el('h1', {}, t('login')),
  el('label', { for: 'username' }, t('username')), el('input', { id: 'username', autocomplete: 'username', required: true }),
  el('label', { for: 'password' }, t('password')), el('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true }),
  code, err, el('button', { class: 'primary', type: 'submit', id: 'signin' }, t('signin')));
  main().replaceChildren(form);
}

// A QR code drawn from the server's modules (no image from elsewhere, no script of its own).
function qrCode(qr) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  const n = qr.size + 8;
  svg.setAttribute('viewBox', `0 0 ${n} ${n}`);
  svg.setAttribute('class', 'qr');
  svg.setAttribute('role', 'img');
  const bg = document.createElementNS(ns, 'rect');
  bg.setAttribute('width', n); bg.setAttribute('height', n); bg.setAttribute('fill', '#fff');
  svg.append(bg);
  let d = '';
  for (let y = 0; y < qr.size; y++) for (let x = 0; x < qr.size; x++) if (qr.modules[y * qr.size + x] === '1') d += `M${x + 4} ${y + 4}h1v1h-1z`;
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', d);
  svg.append(path);
  return svg;
}

// The caller's second factor: add it (scan, confirm a code) or remove it (with a code).
function totpCard() {
  const msg = el('p', { role: 'status', id: 'totp-result' });
  const box = el('div', { class: 'card', id: 'totp-card' }, el('h2', {}, t('totpTitle')));
  const codeInput = () => el('input', { id: 'totp-code', inputmode: 'numeric', maxlength: 6, 'aria-label': t('totpCode'), placeholder: t('totpCode') });
  const done = async (text) => { me = await api('GET', '/api/session'); box.replaceWith(totpCard()); $('totp-result').className = 'notice'; $('totp-result').textContent = text; };
  if (me.account.totp) {
    const input = codeInput();
    box.append(el('p', {}, t('totpOn')), el('form', { class: 'filters', onsubmit: async (ev) => {
      ev.preventDefault();
      if (!confirm(t('confirmTotpOff'))) return;
      try { await api('POST', '/api/totp/remove', { code: input.value }); await done(t('totpRemoved')); } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
    } }, input, el('button', { class: 'danger', type: 'submit', id: 'totp-remove' }, t('totpRemove'))), msg);
  } else {
    box.append(el('p', { class: 'muted' }, t('totpOff')), el('button', { class: 'primary', id: 'totp-begin', onclick: async () => {
      try {
        const r = await api('POST', '/api/totp/begin');
        const input = codeInput();
        box.replaceChildren(el('h2', {}, t('totpTitle')), el('p', {}, t('totpScan')), qrCode(r.qr),
          el('p', {}, t('totpSecret'), ' ', el('code', { id: 'totp-secret' }, r.secret)),
          el('form', { class: 'filters', onsubmit: async (ev) => {
            ev.preventDefault();
            try { await api('POST', '/api/totp/confirm', { code: input.value }); await done(t('totpEnabled')); } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
          } }, input, el('button', { class: 'primary', type: 'submit', id: 'totp-confirm' }, t('totpConfirm'))), msg);
      } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
    } }, t('totpStart')), msg);
  }
  return box;
}

function passwordPage() {
  const msg = el('p', { role: 'status' });
  const form = el('form', { class: 'card login', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await api('POST', '/api/password', { current_password: $('current').value, new_password: $('new').value });
      me = await api('GET', '/api/session');
      location.hash = `#/${PAGES[me.account.role][0]}`;
    } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  } },
  el('h1', {}, t('changePassword')),
  me && me.account.must_change ? el('p', { class: 'notice' }, t('mustChange')) : null,
  el('p', { class: 'muted', id: 'password-rules' }, fill(t('passwordRules'), { n: (me && me.password_min_length) || 12 })),
  el('label', { for: 'current' }, t('currentPassword')), el('input', { id: 'current', type: 'password', autocomplete: 'current-password', required: true }),
  el('label', { for: 'new' }, t('newPassword')), el('input', { id: 'new', type: 'password', autocomplete: 'new-password', required: true }),
  msg, el('button', { class: 'primary', type: 'submit', id: 'save-password' }, t('save')));
  main().replaceChildren(form, me && !me.account.must_change ? totpCard() : '');
}

function table(headers, rows, onclick) {
  if (!rows.length) return el('p', { class: 'muted' }, t('noItems'));
  return el('table', {},
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows.map((r) => el('tr', onclick ? { class: 'clickable', onclick: () => onclick(r.key) , 'data-id': r.key } : {}, r.cells.map((c) => el('td', {}, c))))));
}

function filters(fields, onsearch) {
  const form = el('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); onsearch(Object.fromEntries(new FormData(form))); } },
    fields.map((f) => f.options
      ? el('select', { name: f.name, 'aria-label': t(f.name) }, f.options.map(([v, label]) => el('option', { value: v }, label)))
      : f.type
        ? el('label', { class: 'inline' }, t(f.label), ' ', el('input', { name: f.name, type: f.type, step: f.type === 'number' ? 'any' : null, 'aria-label': t(f.label) }))
        : el('input', { name: f.name, placeholder: t(f.label || f.name), 'aria-label': t(f.label || f.name) })),
    el('button', { class: 'primary', type: 'submit' }, t('search')));
  return form;
}

// Searches answer in any order: each search asks for a ticket, and only the newest ticket's
// answer is drawn, so a slow earlier answer never replaces the one asked for last.
const lastAsked = () => {
  let newest = 0;
  return () => { const mine = ++newest; return () => mine === newest; };
};

const qs = (o) => new URLSearchParams(Object.entries(o).filter(([, v]) => v !== '')).toString();
const badge = (c) => el('span', { class: `badge ${c}` }, c);

// Classes of held mail that wait for a reviewer (approved, or rejected with a notice): outgoing
// mail a DLP policy held, and what a contained account sent.
const REVIEW = ['dlp', 'account'];

// Outgoing mail a DLP policy holds waits here for a reviewer: the quarantine, narrowed to the
// approval class.
async function approvalsPage() {
  return quarantinePage({ class: 'dlp' }, 'approvals');
}

// Classes named in the page's language; scores at or above this (or these classes) ask first.
const clsName = (c) => (t(`cls_${c}`) !== `cls_${c}` ? t(`cls_${c}`) : c);
const evName = (k) => (t(`ev_${k}`) !== `ev_${k}` ? t(`ev_${k}`) : k);
const clsBadge = (c) => el('span', { class: `badge ${c}` }, clsName(c));
const DANGEROUS = ['phish', 'virus', 'bec'];
const dangerous = (i) => DANGEROUS.includes(i.class) || i.score >= 15;
const dayStart = (d) => (d ? String(zoneTime(d)) : '');
const dayEnd = (d) => (d ? String(zoneTime(nextDay(d))) : '');

async function quarantinePage(fixed, title) {
  const out = el('div', { id: 'results' });
  const bulkMsg = el('p', { role: 'status', id: 'bulk-result' });
  let shown = [];
  let last = {};
  const picked = () => shown.filter((i) => $(`pick-${i.id}`) && $(`pick-${i.id}`).checked);
  const ask = lastAsked();
  const search = async (f) => {
    last = f || {};
    const { since, until, ...rest } = last;
    const current = ask();
    try {
      const p = await api('GET', `/api/quarantine?${qs({ ...rest, since: dayStart(since), until: dayEnd(until), ...(fixed || {}) })}`);
      if (!current()) return;
      shown = p.items;
      const pick = (i) => {
        const box = el('input', { type: 'checkbox', id: `pick-${i.id}`, 'aria-label': t('select'), disabled: i.status !== 'held' || REVIEW.includes(i.class) ? true : null });
        box.addEventListener('click', (e) => e.stopPropagation());
        return box;
      };
      out.replaceChildren(el('p', { class: 'muted' }, `${t('total')} ${p.total} ${t('items')}`),
        table([...(fixed ? [] : ['']), t('time'), t('sender'), t('rcpt'), t('subject'), t('class'), t('score'), t('status')],
          p.items.map((i) => ({ key: i.id, cells: [...(fixed ? [] : [pick(i)]), when(i.received_at), i.header_from || i.mail_from, i.rcpts, i.subject, clsBadge(i.class), i.score.toFixed(1), t(i.status)] })),
          (id) => { location.hash = `#/${title || 'quarantine'}/${id}`; }));
    } catch (e) { if (current()) out.replaceChildren(el('p', { class: 'error' }, e.message)); }
  };
  // The same action on every selected item, one after another; the page says how many worked.
  const bulk = async (what) => {
    const items = picked();
    if (!items.length) { bulkMsg.className = 'error'; bulkMsg.textContent = t('selectFirst'); return; }
    const risky = items.filter(dangerous).length;
    const question = what === 'delete' ? fill(t('confirmBulkDelete'), { n: items.length }) : fill(t('confirmBulkRelease'), { n: items.length, risky });
    if (!confirm(question)) return;
    let done = 0;
    const failed = [];
    for (const i of items) {
      try { await api('POST', `/api/quarantine/${i.id}/${what}`, what === 'release' ? {} : undefined); done += 1; } catch (e) { failed.push(`${i.id}: ${e.message}`); }
    }
    await search(last);
    bulkMsg.className = failed.length ? 'error' : 'notice';
    bulkMsg.textContent = fill(t(what === 'delete' ? 'bulkDeleted' : 'bulkReleased'), { n: done }) + (failed.length ? ` ${failed.join('；')}` : '');
  };
  const classes = fixed ? [] : [{ name: 'class', options: [['', t('all')], ...['spam', 'phish', 'virus', 'bec', 'unscannable', 'refused', 'dlp', 'account'].map((c) => [c, clsName(c)])] }];
  const actions = fixed ? null : el('div', { class: 'actions' },
    el('button', { class: 'primary', id: 'bulk-release', onclick: () => bulk('release') }, t('releaseSelected')),
    el('button', { class: 'danger', id: 'bulk-delete', onclick: () => bulk('delete') }, t('deleteSelected')));
  page(t(title || 'quarantine'), filters([{ name: 'sender' }, { name: 'rcpt' }, { name: 'subject' }, ...classes,
    { name: 'status', options: [['held', t('held')], ['released', t('released')], ['deleted', t('deleted')], ['rejected', t('rejected')], ['expired', t('expired')], ['all', t('all')]] },
    { name: 'since', type: 'date', label: 'fromDate' }, { name: 'until', type: 'date', label: 'toDate' },
    { name: 'min_score', type: 'number', label: 'minScore' },
    { name: 'sort', options: ['newest', 'oldest', 'score', 'expiry'].map((o) => [o, t(`sort_${o}`)]) }], search), actions, bulkMsg, out);
  await search({});
}

// The host a link or its text names, lower case ('' when it names none).
const hostOf = (s) => { const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#:@\s]+@)?([^/?#:\s]+)/i.exec(s.trim()) || /^(www\.[^/?#:\s]+)/i.exec(s.trim()); return m ? (m[2] || m[1]).toLowerCase() : ''; };

// A held message's links (what a reader sees, where it really goes; never followed) and its
// header fields, Received chain first.
function anatomyCard(id) {
  const box = el('div', { class: 'card', id: 'anatomy' }, el('h2', {}, t('linksInMessage')));
  api('GET', `/api/quarantine/${id}/anatomy`).then((a) => {
    const rows = a.links.map((l) => {
      const shown = hostOf(l.text);
      const real = hostOf(l.href);
      const differs = shown && real && shown !== real;
      return { cells: [l.text || '–', el('code', { class: differs ? 'mismatch' : null }, l.href), differs ? el('span', { class: 'badge phish' }, t('linkMismatch')) : ''] };
    });
    const received = a.headers.filter(([n]) => n === 'received');
    box.append(...[table([t('linkText'), t('linkTarget'), ''], rows),
      a.forms.length ? el('p', {}, t('formTargets'), ' ', a.forms.map((f) => el('code', {}, f || '–'))) : null,
      el('details', { id: 'headers' }, el('summary', {}, fill(t('headerFields'), { n: a.headers.length, r: received.length })),
        table([t('headerName'), t('headerValue')], a.headers.map(([n, v]) => ({ cells: [el('code', {}, n), v] }))))].filter(Boolean));
  }).catch((e) => box.append(el('p', { class: 'error' }, e.message)));
  return box;
}

async function quarantineItem(id, notice) {
  let data;
  try { data = await api('GET', `/api/quarantine/${encodeURIComponent(id)}`); } catch (e) { page(t('quarantine')); return fail(e); }
  const i = data.item;
  const msg = el('p', { role: 'status', id: 'action-result', class: notice ? 'notice' : null }, notice || '');
  // Outgoing mail held by a DLP policy is approved (delivered) or rejected (the sender is told);
  // it is never "not spam".
  const approval = REVIEW.includes(i.class);
  const waiting = i.recipients.filter((r) => !r.released_at);
  const boxes = waiting.map((r, n) => {
    const box = el('input', { type: 'checkbox', id: `rcpt-${n}`, value: r.rcpt });
    box.checked = true;
    return box;
  });
  const act = async (path, body) => {
    const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
    if (path === 'release' && !chosen.length) { msg.className = 'error'; msg.textContent = t('selectFirst'); return; }
    if (path === 'release' && !approval && dangerous(i) && !confirm(fill(t('confirmDanger'), { cls: clsName(i.class), score: i.score.toFixed(1) }))) return;
    const some = path === 'release' && chosen.length < waiting.length ? { rcpts: chosen } : {};
    try {
      const r = await api('POST', `/api/quarantine/${id}/${path}`, path === 'release' ? { ...body, ...some } : body);
      const said = { delete: t('deleted'), reject: t('rejected') }[path] || (approval ? t('approved') : `${t('released')}：${r.rcpts.join(', ')}`);
      quarantineItem(id, said + (body && body.allow_sender ? ` ${fill(t('senderAllowed'), { s: i.mail_from })}` : ''));
    } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  };
  const buttons = approval
    ? el('div', { class: 'actions' },
      el('button', { class: 'primary', id: 'approve', onclick: () => act('release', {}) }, t('approve')),
      el('a', { class: 'plain', href: `/api/quarantine/${id}/raw`, download: `${id}.eml` }, t('download')),
      el('button', { class: 'danger', id: 'reject', onclick: () => { if (confirm(t('confirmReject'))) act('reject'); } }, t('reject')))
    : el('div', { class: 'actions' },
      el('button', { class: 'primary', id: 'release', onclick: () => act('release', {}) }, t('release')),
      el('button', { class: 'plain', id: 'release-ham', onclick: () => act('release', { not_spam: true }) }, t('releaseNotSpam')),
      i.mail_from ? el('button', { class: 'plain', id: 'release-allow', onclick: () => act('release', { allow_sender: true }) }, t('releaseAllow')) : null,
      el('a', { class: 'plain', href: `/api/quarantine/${id}/raw`, download: `${id}.eml` }, t('download')),
      el('button', { class: 'danger', id: 'delete', onclick: () => { if (confirm(t('confirmDelete'))) act('delete'); } }, t('delete')));
  const rcptList = i.status === 'held' && waiting.length
    ? el('div', { id: 'item-rcpts' }, i.recipients.map((r) => {
      const n = waiting.indexOf(r);
      return n >= 0 ? el('label', { class: 'check' }, boxes[n], ' ', r.rcpt) : el('div', {}, `${r.rcpt} ✓ ${t('released')}`);
    }))
    : i.recipients.map((r) => r.rcpt + (r.released_at ? ` ✓ ${t('released')}` : '')).join(', ');
  const list = approval ? 'approvals' : 'quarantine';
  page(`${t(list)} · ${i.subject || id}`,
    el('p', {}, el('a', { href: `#/${list}` }, `← ${t('back')}`)),
    el('div', { class: 'card' }, el('dl', { class: 'kv' },
      el('dt', {}, t('queueId')), el('dd', {}, i.id),
      el('dt', {}, t('time')), el('dd', {}, when(i.received_at)),
      el('dt', {}, t('sender')), el('dd', {}, i.header_from && i.header_from !== i.mail_from ? `${i.header_from}（${t('envelope')} ${i.mail_from || '<>'}）` : (i.mail_from || i.header_from || '<>')),
      el('dt', {}, t('rcpt')), el('dd', {}, rcptList),
      el('dt', {}, t('subject')), el('dd', {}, i.subject),
      el('dt', {}, t('clientIp')), el('dd', {}, i.client_ip),
      el('dt', {}, t('class')), el('dd', {}, clsBadge(i.class), ` ${i.score.toFixed(1)}`),
      el('dt', {}, t('status')), el('dd', { id: 'item-status' }, t(i.status)),
      el('dt', {}, t('expires')), el('dd', {}, when(i.expires_at)),
      el('dt', {}, t('reason')), el('dd', {}, i.reason)),
    i.status === 'held' ? buttons : null, msg),
    i.status === 'held' ? el('div', { class: 'card' }, el('h2', {}, t('preview')),
      el('iframe', { class: 'preview', sandbox: '', src: `/api/quarantine/${id}/preview`, title: t('preview') })) : null,
    i.status === 'held' ? anatomyCard(id) : null,
    el('div', { class: 'card' }, el('h2', {}, t('evidence')),
      table([t('symbol'), t('score'), t('detail')], ((i.report && i.report.symbols) || []).map((s) => ({ cells: [s.name, s.score.toFixed(2), s.detail] })))),
    el('div', { class: 'card' }, el('h2', {}, t('history')),
      table([t('time'), t('event'), t('rcpt'), t('detail')], data.history.map((e) => ({ cells: [when(e.at), el('span', { class: 'nowrap' }, evName(e.kind)), e.rcpts, e.detail] })))));
}

// The last 24 hours of an account's sending as a small line.
function sparkline(counts) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', '0 0 96 24');
  const max = Math.max(1, ...counts);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', counts.map((v, i) => `${i * 4 + 2},${22 - (v / max) * 20}`).join(' '));
  line.setAttribute('fill', 'none');
  line.setAttribute('stroke', '#d73a49');
  line.setAttribute('stroke-width', '1.5');
  const title = document.createElementNS(ns, 'title');
  title.textContent = `${t('volume24h')}: ${counts.join(' ')}`;
  svg.append(title, line);
  return svg;
}

// A behaviour reason ({kind, ...values}) in the reader's language.
const reasonText = (r) => t(`reason_${r.kind}`).replace(/\{(\w+)\}/g, (_, k) => String(r[k] ?? ''));
const reasonsText = (rs) => rs.map(reasonText).join('；');

const levelBadge = (l) => el('span', { class: `badge level-${l}` }, t(`level_${l}`));

// Clear (a false alarm) or confirm (a compromise) an account; `done` shows the outcome.
function riskButtons(account, done) {
  const act = async (ev, what, question, outcome) => {
    ev.stopPropagation();
    if (!confirm(t(question))) return;
    try {
      await api('POST', `/api/risk/${encodeURIComponent(account)}/${what}`);
      done('notice', t(outcome));
    } catch (e) { done('error', e.message); }
  };
  return el('span', { class: 'actions' },
    el('button', { class: 'primary', id: 'clear', onclick: (ev) => act(ev, 'clear', 'confirmClear', 'cleared') }, t('clear')),
    el('button', { class: 'danger', id: 'confirm', onclick: (ev) => act(ev, 'confirm', 'confirmConfirm', 'confirmed') }, t('confirmCompromise')));
}

async function riskPage() {
  let r;
  try { r = await api('GET', '/api/risk'); } catch (e) { page(t('risk')); return fail(e); }
  const msg = el('p', { role: 'status', id: 'risk-result' });
  const done = (cls, text) => { riskPage().then(() => { msg.className = cls; msg.textContent = text; main().append(msg); }); };
  page(t('risk'), el('p', { class: 'muted' }, t('riskIntro')), msg,
    table([t('account'), t('level'), t('score'), t('volume24h'), t('explanation'), t('since'), ''],
      r.accounts.map((a) => ({ key: a.account, cells: [a.account, levelBadge(a.level), a.peak.toFixed(1), sparkline(a.volume),
        reasonsText(a.reasons), when(a.since), a.level === 'normal' ? '' : riskButtons(a.account, done)] })),
      (key) => { location.hash = `#/risk/${encodeURIComponent(key)}`; }));
}

async function riskItem(account) {
  let d;
  try { d = await api('GET', `/api/risk/${encodeURIComponent(account)}`); } catch (e) { page(t('risk')); return fail(e); }
  const a = d.account;
  const msg = el('p', { role: 'status', id: 'risk-result' });
  const done = (cls, text) => { riskItem(account).then(() => { msg.className = cls; msg.textContent = text; main().querySelector('.card').append(msg); }); };
  page(`${t('risk')} · ${a.account}`,
    el('p', {}, el('a', { href: '#/risk' }, `← ${t('back')}`)),
    el('div', { class: 'card' }, el('dl', { class: 'kv' },
      el('dt', {}, t('account')), el('dd', {}, a.account),
      el('dt', {}, t('level')), el('dd', { id: 'risk-level' }, levelBadge(a.level)),
      el('dt', {}, t('score')), el('dd', {}, `${a.peak.toFixed(1)} (${a.score.toFixed(1)})`),
      el('dt', {}, t('explanation')), el('dd', {}, reasonsText(a.reasons)),
      el('dt', {}, t('since')), el('dd', {}, when(a.since)),
      el('dt', {}, t('lastSent')), el('dd', {}, when(a.last_at)),
      el('dt', {}, t('messages')), el('dd', {}, String(a.messages)),
      el('dt', {}, t('heldMail')), el('dd', { id: 'risk-held' }, String(d.held)),
      el('dt', {}, t('volume24h')), el('dd', {}, sparkline(a.volume))),
    a.level === 'normal' ? null : riskButtons(a.account, done)),
    el('div', { class: 'card' }, el('h2', {}, t('history')),
      table([t('time'), t('level'), t('score'), t('explanation'), t('actor')],
        d.events.map((e) => ({ cells: [when(e.at), levelBadge(e.level), e.score.toFixed(1), reasonsText(e.reasons), e.actor] })))));
}

const STATE_CLASS = { delivered: 'state-active', released: 'state-active', bounced: 'state-listed', rejected: 'state-listed', quarantined: 'level-held', deferred: 'level-throttled', discarded: 'state-listed' };
const evBadge = (k) => el('span', { class: `badge ${STATE_CLASS[k] || ''}` }, evName(k));
const weekAgo = () => new Date(Date.now() - 6 * 86400000 + zoneOffset(Date.now()) * 1000).toISOString().slice(0, 10);

// Messages, one row each: when, who to whom, what the scanner said, where it stands now.
async function trackingPage() {
  const out = el('div', { id: 'results' });
  const pageSize = 50;
  let last = {};
  const ask = lastAsked();
  const search = async (f, offset = 0) => {
    last = f || last;
    const { since, until, ...rest } = last;
    const current = ask();
    try {
      const p = await api('GET', `/api/tracking/messages?${qs({ ...rest, since: dayStart(since), until: dayEnd(until), limit: String(pageSize), offset: String(offset) })}`);
      if (!current()) return;
      const pages = Math.max(1, Math.ceil(p.total / pageSize));
      const at = Math.floor(offset / pageSize) + 1;
      const pager = el('div', { class: 'actions pager' },
        el('button', { class: 'plain', id: 'page-prev', disabled: offset === 0 ? true : null, onclick: () => search(null, offset - pageSize) }, t('prevPage')),
        el('span', { class: 'muted', id: 'page-at' }, fill(t('pageOf'), { at, pages, total: p.total })),
        el('button', { class: 'plain', id: 'page-next', disabled: at >= pages ? true : null, onclick: () => search(null, offset + pageSize) }, t('nextPage')));
      out.replaceChildren(
        table([t('time'), t('sender'), t('rcpt'), t('subject'), t('verdict'), t('status')],
          p.messages.map((m) => ({ key: m.first.queue_id, cells: [when(m.first.at), m.first.mail_from || '<>', m.first.rcpts, m.first.subject,
            m.first.class ? el('span', {}, clsBadge(m.first.class), ` ${m.first.score.toFixed(1)}`) : '', evBadge(m.latest.kind)] })),
          (id) => { location.hash = `#/tracking/${id}`; }), pager);
    } catch (e) { if (current()) out.replaceChildren(el('p', { class: 'error' }, e.message)); }
  };
  const form = filters([{ name: 'sender' }, { name: 'rcpt' }, { name: 'subject' }, { name: 'id', label: 'idSearch' },
    { name: 'class', options: [['', t('allClasses')], ...['clean', 'spam', 'phish', 'bec', 'virus', 'unscannable', 'dlp'].map((c) => [c, clsName(c)])] },
    { name: 'direction', options: [['', t('allDirections')], ...['inbound', 'outbound', 'internal'].map((d) => [d, t(d)])] },
    { name: 'since', type: 'date', label: 'fromDate' }, { name: 'until', type: 'date', label: 'toDate' }], (f) => search(f, 0));
  form.querySelector('input[name=since]').value = weekAgo();
  page(t('tracking'), form, out);
  await search({ since: weekAgo() });
}

// One message's timeline: every event from its arrival to where it stands.
async function trackingItem(id) {
  let p;
  try { p = await api('GET', `/api/tracking/messages/${encodeURIComponent(id)}`); } catch (e) { page(t('tracking')); return fail(e); }
  const first = p.events[0];
  const lastEvent = p.events[p.events.length - 1];
  page(`${t('tracking')} · ${first.subject || id}`,
    el('p', {}, el('a', { href: '#/tracking' }, `← ${t('back')}`)),
    el('div', { class: 'card' }, el('dl', { class: 'kv' },
      el('dt', {}, t('queueId')), el('dd', {}, id),
      el('dt', {}, t('time')), el('dd', {}, when(first.at)),
      el('dt', {}, t('direction')), el('dd', {}, first.direction ? t(first.direction) : '–'),
      el('dt', {}, t('sender')), el('dd', {}, first.mail_from || '<>'),
      el('dt', {}, t('rcpt')), el('dd', {}, first.rcpts),
      el('dt', {}, t('subject')), el('dd', {}, first.subject),
      el('dt', {}, t('clientIp')), el('dd', {}, first.client_ip),
      el('dt', {}, t('verdict')), el('dd', {}, first.class ? [clsBadge(first.class), ` ${first.score.toFixed(1)}`] : '–'),
      el('dt', {}, t('status')), el('dd', { id: 'message-status' }, evBadge(lastEvent.kind)))),
    el('div', { class: 'card' }, el('h2', {}, t('timeline')),
      el('ol', { class: 'timeline', id: 'timeline' }, p.events.map((e) => el('li', {},
        el('span', { class: 'muted' }, when(e.at)), ' ', evBadge(e.kind), ' ', e.rcpts,
        e.detail ? el('div', { class: 'detail' }, e.detail) : null)))));
}

// ECharts (vendored by webui/vendor/fetch.sh), loaded the first time a page draws a chart.
let echartsLoading = null;
function loadCharts() {
  if (!echartsLoading) {
    echartsLoading = new Promise((resolve, reject) => {
      const script = el('script', { src: '/vendor/echarts-6.1.0.min.js' });
      script.addEventListener('load', () => resolve(window.echarts));
      script.addEventListener('error', () => { echartsLoading = null; reject(new Error(t('chartsUnavailable'))); });
      document.head.append(script);
    });
  }
  return echartsLoading;
}

let liveCharts = [];
window.addEventListener('resize', () => liveCharts.forEach((c) => c.resize()));
// Draws `option` into `node` once the library is there; charts no longer on the page are let go.
async function drawChart(node, option) {
  const echarts = await loadCharts();
  liveCharts = liveCharts.filter((c) => document.body.contains(c.getDom()) || (c.dispose(), false));
  const chart = echarts.init(node, null, { renderer: 'canvas' });
  // Tooltips drawn on the canvas: HTML ones would need inline styles, which the CSP forbids.
  chart.setOption({ textStyle: { fontFamily: 'inherit' }, ...option });
  liveCharts.push(chart);
  return chart;
}

const CLASS_COLORS = { clean: '#2da44e', spam: '#d4a72c', phish: '#cf222e', virus: '#8250df', bec: '#bc4c00', unscannable: '#6e7781', dlp: '#0969da', refused: '#57606a' };
const RANGES = ['24h', '7d', '30d'];
const percent = (n, total) => (total ? `${(Math.round((n * 1000) / total) / 10).toFixed(1)}%` : '–');

// The page the address names now, as route() picks it.
const routeName = () => {
  const wanted = location.hash.replace(/^#\//, '').split('/')[0];
  const allowed = me ? pagesOf(me.account) : [];
  return allowed.includes(wanted) ? wanted : allowed[0];
};

async function dashboardPage(range = '24h') {
  let d;
  try { d = await api('GET', `/api/dashboard?range=${range}`); } catch (e) { page(t('dashboard')); return fail(e); }
  // The landing page's figures take longest: if the administrator went on meanwhile, the page
  // they went to stays.
  if (routeName() !== 'dashboard') return;
  const s = d.stats;
  const total = s.classes.reduce((n, [, c]) => n + c, 0);
  const count = (list, key) => (list.find(([k]) => k === key) || [key, 0])[1];
  const stopped = total - count(s.classes, 'clean');
  const picker = el('div', { class: 'actions', role: 'group', 'aria-label': t('range') }, RANGES.map((r) =>
    el('button', { class: r === range ? 'primary' : 'plain', id: `range-${r}`, 'aria-pressed': r === range ? 'true' : 'false', onclick: () => dashboardPage(r) }, t(`range_${r}`))));
  const tile = (label, value, sub, id) => el('div', { class: 'tile', id }, el('div', { class: 'muted' }, label), el('div', { class: 'big' }, String(value)), sub ? el('div', { class: 'muted' }, sub) : null);
  const classes = ['spam', 'phish', 'virus', 'bec', 'unscannable', 'dlp'].filter((c) => count(s.classes, c) > 0 || ['spam', 'phish', 'virus'].includes(c));
  const tiles = el('div', { class: 'tiles' },
    tile(t('received'), total, t(`range_${range}`), 'tile-total'),
    tile(clsName('clean'), count(s.classes, 'clean'), percent(count(s.classes, 'clean'), total), 'tile-clean'),
    tile(t('stopped'), stopped, percent(stopped, total), 'tile-stopped'),
    ...classes.map((c) => tile(clsName(c), count(s.classes, c), percent(count(s.classes, c), total), `tile-${c}`)));
  const delivered = count(s.kinds, 'delivered');
  const bounced = count(s.kinds, 'bounced');
  const health = el('div', { class: 'tiles' },
    tile(evName('delivered'), delivered, null, 'tile-delivered'),
    tile(evName('deferred'), count(s.kinds, 'deferred'), null, 'tile-deferred'),
    tile(evName('bounced'), bounced, percent(bounced, delivered + bounced), 'tile-bounced'),
    ...(d.queue ? [tile(t('queueActive'), d.queue.active, null, 'tile-queue'), tile(t('queueHeld'), d.queue.held, null, 'tile-held')] : []));
  const flow = el('div', { class: 'chart', id: 'chart-flow' });
  const pie = el('div', { class: 'chart', id: 'chart-classes' });
  const top = (title, rows, id) => el('div', { class: 'card', id }, el('h2', {}, title), table([t('name'), t('mailCount')], rows.map(([w, n]) => ({ cells: [w, String(n)] }))));
  page(t('dashboard'), picker,
    el('div', { class: 'card' }, el('h2', {}, t('byClass')), tiles),
    el('div', { class: 'card' }, el('h2', {}, t('flowOver')), flow),
    el('div', { class: 'grid2' },
      el('div', { class: 'card' }, el('h2', {}, t('classShare')), pie),
      el('div', { class: 'card' }, el('h2', {}, t('delivery')), health)),
    el('div', { class: 'grid3' },
      top(t('topSenders'), s.top_senders, 'top-senders'),
      top(t('topSenderDomains'), s.top_sender_domains, 'top-domains'),
      top(t('topTargets'), s.top_targets, 'top-targets')));
  // Stacked bars, one per bucket and class, on a time axis that spans the whole range. The
  // library labels times in UTC or the browser's zone only: the times are shifted by the
  // gateway zone's offset and labelled as UTC, so the axis reads the gateway's hours.
  const names = [...new Set(s.series.map(([, c]) => c))];
  const shown = (at) => (at + (d.offset || 0)) * 1000;
  try {
    await drawChart(flow, {
      useUTC: true,
      legend: { data: names.map(clsName), top: 0 },
      grid: { left: 48, right: 16, top: 36, bottom: 32 },
      tooltip: { trigger: 'axis', renderMode: 'richText' },
      xAxis: { type: 'time', min: shown(d.since), max: shown(d.until) },
      yAxis: { type: 'value', name: t('mailCount'), minInterval: 1 },
      series: names.map((c) => ({ name: clsName(c), type: 'bar', stack: 'all', color: CLASS_COLORS[c], barMaxWidth: 24,
        data: s.series.filter(([, k]) => k === c).map(([at, , n]) => [shown(at), n]) })),
    });
    await drawChart(pie, {
      tooltip: { trigger: 'item', renderMode: 'richText' },
      legend: { bottom: 0 },
      series: [{ type: 'pie', radius: ['40%', '68%'], data: s.classes.map(([c, n]) => ({ name: clsName(c), value: n, itemStyle: { color: CLASS_COLORS[c] } })) }],
    });
  } catch (e) { fail(e); }
}


// The DLP policies as a table: what fires each one (counts, words, patterns, files) and what it does.
// What fires a DLP policy, in words.
function dlpConditions(p) {
  return [
    ...Object.entries(p.detect || {}).map(([d, n]) => `${t(`det_${d}`)} ≥ ${n}`),
    p.keywords.length ? `${t('keywords')} (${p.keywords.length}) ≥ ${p.min_keywords}` : '',
    p.patterns.length ? `${t('patterns')} (${p.patterns.length}) ≥ ${p.min_patterns}` : '',
    p.extensions.length ? p.extensions.map((e) => `.${e}`).join(' ') : '',
    p.max_attachment_mib ? `≥ ${p.max_attachment_mib} MiB` : '',
    p.encrypted ? t('encrypted') : '',
    p.uninspectable ? t('uninspectable') : '',
  ].filter(Boolean).join('；');
}

const THRESHOLD_CLASSES = ['spam', 'spam_high', 'phish', 'bec', 'virus'];
const ACTION_CLASSES = [...THRESHOLD_CLASSES, 'unscannable'];
const ACTIONS = ['deliver', 'tag', 'quarantine', 'reject', 'discard'];
const lines = (text) => text.split('\n').map((x) => x.trim()).filter(Boolean);

// Each editor part returns its node and a read() giving the value back for the API.
function thresholdInputs(id, values) {
  const inputs = THRESHOLD_CLASSES.map((c) => el('input', { id: `${id}-${c}`, type: 'number', step: '0.1', min: '0.1', required: true, value: values[c] }));
  return {
    node: el('div', { class: 'grid' }, THRESHOLD_CLASSES.map((c, i) => el('label', { for: `${id}-${c}` }, t(`cls_${c}`), inputs[i]))),
    read: () => Object.fromEntries(THRESHOLD_CLASSES.map((c, i) => [c, Number(inputs[i].value)])),
  };
}

function actionSelects(id, values) {
  const selects = ACTION_CLASSES.map((c) => {
    const s = el('select', { id: `${id}-${c}` }, ACTIONS.map((a) => el('option', { value: a }, t(`act_${a}`))));
    s.value = values[c];
    return s;
  });
  return {
    node: el('div', { class: 'grid' }, ACTION_CLASSES.map((c, i) => el('label', { for: `${id}-${c}` }, t(`cls_${c}`), selects[i]))),
    read: () => Object.fromEntries(ACTION_CLASSES.map((c, i) => [c, selects[i].value])),
  };
}

// An allow or block list: one entry a line, exported as a text file, imported by appending one.
function listArea(id, title, values) {
  const area = el('textarea', { id, rows: 6, spellcheck: 'false' });
  area.value = values.join('\n');
  const count = el('span', { class: 'muted' });
  const counted = () => { count.textContent = fill(t('entries'), { n: lines(area.value).length }); };
  area.addEventListener('input', counted);
  counted();
  const file = el('input', { type: 'file', accept: '.txt,.csv,text/plain', id: `${id}-import`, 'aria-label': t('importList') });
  file.addEventListener('change', async () => {
    const f = file.files[0];
    if (!f) return;
    const text = await f.text();
    area.value = [...lines(area.value), ...lines(text.replace(/[,;\t]/g, '\n'))].join('\n');
    counted();
    file.value = '';
  });
  const save = el('button', { type: 'button', class: 'plain', onclick: () => {
    const a = el('a', { href: URL.createObjectURL(new Blob([lines(area.value).join('\n') + '\n'], { type: 'text/plain' })), download: `${id}.txt` });
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  } }, t('exportList'));
  return {
    node: el('div', { class: 'list' }, el('label', { for: id }, title, ' ', count), area,
      el('div', { class: 'actions' }, save, el('label', {}, t('importList'), ' ', file))),
    read: () => lines(area.value),
  };
}

// A part a domain may set or leave to the global policy.
function inheritable(id, label, own, make) {
  const box = el('input', { type: 'checkbox', id });
  box.checked = !own;
  const part = make();
  part.node.hidden = box.checked;
  box.addEventListener('change', () => { part.node.hidden = box.checked; });
  return { node: el('div', {}, el('label', { class: 'check' }, box, ' ', label), part.node), read: () => (box.checked ? null : part.read()) };
}

function domainEditor(id, d, defaults) {
  const th = inheritable(`${id}-th-inherit`, t('inheritThresholds'), d.thresholds, () => thresholdInputs(`${id}-th`, d.thresholds || defaults.thresholds));
  const act = inheritable(`${id}-act-inherit`, t('inheritActions'), d.actions, () => actionSelects(`${id}-act`, d.actions || defaults.actions));
  const allow = listArea(`${id}-allow`, t('allowList'), d.allow);
  const block = listArea(`${id}-block`, t('blockList'), d.block);
  return {
    node: el('div', {}, th.node, act.node, el('div', { class: 'lists' }, allow.node, block.node)),
    read: () => ({ domain: d.domain, thresholds: th.read(), actions: act.read(), allow: allow.read(), block: block.read() }),
  };
}

// The server's reason for refusing a field, in the reader's language where the catalogue
// words it (`why_…` patterns), else as the server wrote it.
function whyText(error) {
  const reason = error.includes(': ') && /^[\w.[\]-]+: /.test(error) ? error.slice(error.indexOf(': ') + 2) : error;
  for (const [pattern, key] of WHY) {
    const m = reason.match(pattern);
    if (m && T[lang][key]) return fill(t(key), { x: m[1] || '', y: m[2] || '' });
  }
  return reason;
}
const WHY = [
  [/^thresholds must be positive/, 'why_thresholds'], [/^more than (\d+) entries/, 'why_entries'],
  [/^not an IP, CIDR range, address or domain: (.*)/, 'why_entry'], [/^`(.*)` is not a protected domain/, 'why_not_protected'],
  [/^`(.*)` has two policies/, 'why_two_policies'], [/^points are between/, 'why_points'], [/^no rule or check has this symbol/, 'why_symbol'],
  [/^a symbol name is/, 'why_symbol_name'], [/^at most (\d+) characters/, 'why_chars'], [/^unknown parameter/, 'why_unknown'],
  [/^unknown variant `(.*?)`/, 'why_variant'], [/^must be a host name or address/, 'why_host'], [/^must be a host name$/, 'why_hostname'],
  [/^must be greater than 0/, 'why_positive'], [/^must be a domain or `\*`/, 'why_route_domain'], [/^`(.*)` has more than one route/, 'why_two_routes'],
  [/^list at least one domain/, 'why_one_domain'], [/^`(.*)` is not a domain/, 'why_not_domain'], [/^must be host:port/, 'why_host_port'],
  [/^at most (\d+) (domains|routes)/, 'why_at_most'], [/unknown field `(.*?)`/, 'why_unknown_field'],
  [/^needs a name of 1 to 100/, 'why_dlp_name'], [/^two policies have this name/, 'why_dlp_same_name'], [/^directions must name/, 'why_dlp_directions'],
  [/^unknown detector "(.*?)"/, 'why_dlp_detector'], [/^detect\.\w+ must be at least 1/, 'why_dlp_count'], [/^at most (\d+) keywords and patterns/, 'why_dlp_terms'],
  [/^a keyword is empty/, 'why_dlp_empty_keyword'], [/^pattern (".*?"): /, 'why_dlp_pattern'], [/^senders: not an IP, CIDR range, address or domain: (.*)/, 'why_entry'],
  [/^approval_hours must be/, 'why_dlp_hours'], [/^has no condition/, 'why_dlp_condition'], [/^at most (\d+) policies and (\d+) patterns/, 'why_dlp_total'],
  [/^`(.*)` is not a file extension/, 'why_extension'], [/^no scanner runs on this gateway/, 'why_no_scanner'],
  [/^port (\d+) is below 1024/, 'why_listen_port'], [/^(.*) is used twice/, 'why_listen_twice'], [/^(\S+) is not an address of this machine/, 'why_listen_local'],
  [/^(.*) is in use by another program/, 'why_listen_in_use'], [/^at most (\d+) addresses/, 'why_at_most_addresses'], [/invalid socket address/, 'why_socket']
];

// A change's setting in words: "domains[a.test].actions.phish" → "按域 a.test · 处置 · 钓鱼邮件".
function changeKey(key) {
  const [path, entry] = key.split(' ∋ ');
  const whole = t(`pk_${path}`);
  const words = whole !== `pk_${path}` ? [whole] : path.split('.').flatMap((part) => {
    const m = part.match(/^(\w+)\[(.*)\]$/);
    if (m) return [`${t(`pk_${m[1]}`)} ${m[2]}`];
    for (const prefix of ['pk', 'cls', 'det']) {
      const w = t(`${prefix}_${part}`);
      if (w !== `${prefix}_${part}`) return [w];
    }
    return [part];
  });
  const shown = path.endsWith('directions') && T[lang][entry] ? t(entry) : entry;
  return entry === undefined ? words.join(' · ') : `${words.join(' · ')}：${shown}`;
}

const changeValue = (v) => {
  if (v === null || v === undefined) return '–';
  if (v === 'true' || v === 'false') return t(v === 'true' ? 'yes' : 'no');
  for (const prefix of ['act', 'dlp']) if (T[lang][`${prefix}_${v}`]) return t(`${prefix}_${v}`);
  return v;
};

function changesTable(changes) {
  return table([t('setting'), t('before'), t('after')], changes.map((c) => ({ cells: [changeKey(c.key), changeValue(c.before), changeValue(c.after)] })));
}

function versionLine(v) {
  return v ? fill(t('pol_version'), { n: v.version, who: v.source === 'file' ? t('src_file') : v.author.replace(/^console:/, ''), at: when(v.created_at) }) : '';
}

async function policyVersions(box) {
  try {
    const { versions } = await api('GET', '/api/policy/versions');
    const detail = el('div', { id: 'policy-version' });
    const open = async (n) => {
      const d = await api('GET', `/api/policy/versions/${n}`);
      detail.replaceChildren(el('div', {}, el('h2', {}, `${t('version')} ${n} · ${t('changes')}`), d.version.comment ? el('p', {}, d.version.comment) : null, changesTable(d.changes),
        n !== versions[0].version ? el('button', { class: 'danger', id: 'rollback', onclick: async () => {
          if (!confirm(fill(t('confirmRollback'), { n }))) return;
          try { const r = await api('POST', `/api/policy/versions/${n}/restore`); policyPage(fill(t('policySaved'), { n: r.version.version }), r.changes); } catch (e) { fail(e); }
        } }, t('rollback')) : null));
    };
    box.replaceChildren(el('h2', {}, t('policyVersions')),
      table([t('version'), t('time'), t('actor'), t('comment')], versions.map((v) => ({ key: v.version, cells: [String(v.version), when(v.created_at), v.source === 'file' ? t('src_file') : v.author.replace(/^console:/, ''), v.comment] })), open),
      detail);
  } catch (e) { box.replaceChildren(el('p', { class: 'error' }, e.message)); }
}

// A symbol's meaning in the reader's language, where its rule file gives it.
const meaning = (s) => (lang === 'zh-CN' && s.description_zh) || s.description;

// Each symbol's switch and points; what differs from the rule files is what the policy keeps.
function rulesEditor(symbols, scores) {
  if (!symbols.length) return { node: el('p', { class: 'muted' }, t('noRules')), read: () => scores };
  const rows = symbols.map((s) => {
    const set = Object.prototype.hasOwnProperty.call(scores, s.name) ? scores[s.name] : s.score;
    const on = el('input', { type: 'checkbox', 'aria-label': fill(t('ruleOn'), { s: s.name }), 'data-symbol': s.name });
    on.checked = set !== 0 || s.score === 0;
    const points = el('input', { type: 'number', step: 'any', min: -100, max: 100, class: 'points', value: set !== 0 ? set : s.score,
      'aria-label': fill(t('rulePoints'), { s: s.name }), 'data-points': s.name });
    const value = () => (!on.checked ? 0 : points.value === '' ? s.score : Number(points.value));
    const tr = el('tr', {}, el('td', {}, on), el('td', {}, el('code', {}, s.name)), el('td', {}, t(`cls_${s.category}`)),
      el('td', { class: 'wrap' }, meaning(s)), el('td', {}, String(s.score)), el('td', {}, points));
    return { s, tr, value, text: `${s.name} ${s.description} ${s.description_zh}`.toLowerCase() };
  });
  const changed = (r) => r.value() !== r.s.score;
  const count = el('p', { class: 'muted', id: 'rules-count' });
  const query = el('input', { type: 'search', id: 'rule-filter', placeholder: t('ruleFilter'), 'aria-label': t('ruleFilter') });
  const only = el('input', { type: 'checkbox', id: 'rule-changed-only' });
  const show = () => {
    const q = query.value.trim().toLowerCase();
    for (const r of rows) r.tr.hidden = (q && !r.text.includes(q)) || (only.checked && !changed(r));
    count.textContent = fill(t('rulesChanged'), { n: rows.length, c: rows.filter(changed).length });
  };
  query.addEventListener('input', show);
  only.addEventListener('change', show);
  const body = el('tbody', {}, rows.map((r) => r.tr));
  body.addEventListener('change', show);
  show();
  return {
    node: el('div', {}, el('div', { class: 'filters' }, query, el('label', { class: 'check' }, only, ' ', t('ruleChangedOnly'))), count,
      el('div', { class: 'scroll-y' }, el('table', { id: 'rules-table' }, el('thead', {}, el('tr', {},
        [t('ruleEnabled'), t('ruleName'), t('ruleCategory'), t('ruleDescription'), t('ruleDefault'), t('ruleScore')].map((h) => el('th', {}, h)))), body))),
    read: () => Object.fromEntries(rows.filter(changed).map((r) => [r.s.name, r.value()]).filter(([, v]) => Number.isFinite(v))),
  };
}

// The policy's three pages — detection, refused file types, data-leak prevention — are tabs of
// one policy: each saves the whole of it as one new version, and all share its versions.
const POLICY_TABS = ['policy', 'attachments', 'dlp'];
function policyTabs(current) {
  return el('nav', { class: 'tabs', id: 'policy-tabs', 'aria-label': t('policy') }, POLICY_TABS.map((tab) =>
    el('a', { href: tab === 'policy' ? '#/policy' : `#/policy/${tab}`, class: tab === current ? 'active' : null, 'aria-current': tab === current ? 'page' : null }, t(`tab_${tab}`))));
}

// Saves the policy `read()` gives as the version after `base`; `done` shows the result.
function policySaveForm(base, read, msg, done) {
  const comment = el('input', { id: 'policy-comment', maxlength: 500, 'aria-label': t('comment'), placeholder: t('comment') });
  return el('form', { class: 'filters', id: 'policy-form', onsubmit: async (ev) => {
    ev.preventDefault();
    if (!confirm(t('confirmPolicy'))) return;
    let body;
    try { body = read(); } catch (e) { msg.className = 'error'; msg.textContent = e.message; return; }
    try {
      const r = await api('PUT', '/api/policy', { base, comment: comment.value, ...body });
      done(fill(t('policySaved'), { n: r.version.version }), r.changes);
    } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  } }, comment, el('button', { class: 'primary', type: 'submit', id: 'policy-save' }, t('savePolicy')));
}

// The top of a policy tab: the version in force, the last save's result and changes.
function policyHead(p, saved, changes) {
  const msg = el('p', { role: 'status', id: 'policy-result', class: saved ? 'notice' : null }, saved || '');
  return { msg, nodes: [p.scope ? null : policyTabs(currentTab()), el('p', { class: 'muted', id: 'policy-in-force' }, versionLine(p.common.version)), msg,
    changes && changes.length ? el('div', { class: 'card', id: 'policy-changes' }, changesTable(changes)) : null] };
}
const currentTab = () => location.hash.split('/')[2] || 'policy';

async function policyPage(saved, changes) {
  let p;
  try { p = await api('GET', '/api/policy'); } catch (e) { page(t('policy')); return fail(e); }
  const head = policyHead(p, saved, changes);
  const msg = head.msg;
  const base = p.common.version ? p.common.version.version : 0;
  let read;
  const parts = [];
  if (p.scope) {
    const d = domainEditor('dom', p.domain_policy, p.defaults);
    read = () => ({ domain_policy: d.read() });
    parts.push(el('div', { class: 'card' }, el('p', { class: 'muted' }, fill(t('domainScope'), { d: p.scope }), ' ',
      ACTION_CLASSES.map((c) => `${t(`cls_${c}`)} ${t(`act_${p.defaults.actions[c]}`)}`).join('，')), d.node));
  } else {
    const pol = p.policy;
    const th = thresholdInputs('th', pol.thresholds);
    const act = actionSelects('act', pol.actions);
    const allow = listArea('allow-list', t('allowList'), pol.allow);
    const block = listArea('block-list', t('blockList'), pol.block);
    const rules = rulesEditor(p.symbols || [], pol.scores || {});
    const doms = p.protected_domains.map((name) => {
      const own = pol.domains.find((x) => x.domain === name);
      const box = el('input', { type: 'checkbox', id: `own-${name}` });
      box.checked = !!own;
      const ed = domainEditor(`dom-${name}`, own || { domain: name, thresholds: null, actions: null, allow: [], block: [] }, pol);
      ed.node.hidden = !own;
      box.addEventListener('change', () => { ed.node.hidden = !box.checked; });
      return { node: el('details', { open: own ? true : null }, el('summary', {}, name), el('label', { class: 'check' }, box, ' ', t('ownPolicy')), ed.node), read: () => (box.checked ? ed.read() : null) };
    });
    read = () => ({ policy: { ...pol, thresholds: th.read(), actions: act.read(), allow: allow.read(), block: block.read(), domains: doms.map((d) => d.read()).filter(Boolean), scores: rules.read() } });
    parts.push(
      el('div', { class: 'card' }, el('h2', {}, t('thresholds')), el('p', { class: 'muted' }, t('thresholdsHelp')), th.node),
      el('div', { class: 'card' }, el('h2', {}, t('actionsTitle')), act.node),
      el('div', { class: 'card' }, el('p', { class: 'muted' }, t('listHelp')), el('div', { class: 'lists' }, allow.node, block.node)),
      el('div', { class: 'card' }, el('h2', {}, t('domainPolicies')), doms.map((d) => d.node)),
      el('div', { class: 'card', id: 'policy-rules' }, el('h2', {}, t('rulesTitle')), el('p', { class: 'muted' }, t('rulesHelp')), rules.node));
  }
  const form = policySaveForm(base, read, msg, policyPage);
  const versions = el('div', { class: 'card', id: 'policy-versions' });
  const c = p.common;
  page(t('policy'), ...head.nodes,
    ...(c.editable ? [...parts, form] : parts),
    c.editable ? ownListsCard() : null,
    p.scope ? null : versions,
    el('div', { class: 'card' }, el('h2', {}, t('readOnly')), el('dl', { class: 'kv' },
      el('dt', {}, t('model')), el('dd', {}, c.model),
      el('dt', {}, t('retention')), el('dd', {}, Object.entries(c.quarantine_retention_days).map(([k, v]) => `${t(`cls_${k}`)} ${v}`).join('，')),
      el('dt', {}, t('protectedDomains')), el('dd', {}, p.protected_domains.join('，')),
      ...(p.scope ? [] : [el('dt', {}, t('internalRelays')), el('dd', {}, (p.internal_relays || []).join('，') || '–'),
        el('dt', {}, t('dkimDomains')), el('dd', {}, (p.dkim_domains || []).join('，') || '–')]))));
  if (!p.scope && c.editable) policyVersions(versions);
}

// File types refused in inbound mail, and the switches and points of the attachment checks.
const ATTACH_SYMBOL = /^(ATTACH|ARCHIVE)_/;
const EXECUTABLE_TYPES = ['exe', 'scr', 'com', 'pif', 'bat', 'cmd', 'cpl', 'msi', 'js', 'jse', 'vbs', 'vbe', 'wsf', 'hta', 'ps1', 'lnk', 'jar', 'iso', 'img', 'vhd', 'chm'];
async function attachmentsPage(saved, changes) {
  let p;
  try { p = await api('GET', '/api/policy'); } catch (e) { page(t('tab_attachments')); return fail(e); }
  const head = policyHead(p, saved, changes);
  const pol = p.policy;
  const blocked = listArea('blocked-types', t('blockedTypes'), pol.attachments.blocked);
  const area = blocked.node.querySelector('textarea');
  const addExecutables = el('button', { type: 'button', class: 'plain', id: 'blocked-add-executables', onclick: () => {
    const have = lines(area.value);
    area.value = [...have, ...EXECUTABLE_TYPES.filter((x) => !have.includes(x))].join('\n');
    area.dispatchEvent(new Event('input'));
  } }, t('addExecutables'));
  const symbols = (p.symbols || []).filter((x) => ATTACH_SYMBOL.test(x.name));
  const own = Object.fromEntries(Object.entries(pol.scores || {}).filter(([k]) => ATTACH_SYMBOL.test(k)));
  const others = Object.fromEntries(Object.entries(pol.scores || {}).filter(([k]) => !ATTACH_SYMBOL.test(k)));
  const rules = rulesEditor(symbols, own);
  const read = () => ({ policy: { ...pol, attachments: { blocked: blocked.read().map((x) => x.replace(/^\./, '')) }, scores: { ...others, ...rules.read() } } });
  const c = p.common;
  page(t('tab_attachments'), ...head.nodes,
    el('div', { class: 'card', id: 'blocked-card' }, el('h2', {}, t('blockedTypes')),
      el('p', { class: 'muted' }, fill(t('blockedHelp'), { action: t(`act_${pol.actions.virus}`) })),
      blocked.node, el('div', { class: 'actions' }, addExecutables)),
    el('div', { class: 'card', id: 'attach-rules' }, el('h2', {}, t('attachRules')), el('p', { class: 'muted' }, t('attachRulesHelp')), rules.node),
    c.editable ? policySaveForm(c.version ? c.version.version : 0, read, head.msg, attachmentsPage) : null);
}

// Data-leak prevention: what outgoing and internal mail must not carry, policy by policy.
const DLP_ACTIONS = ['log', 'hold', 'block'];
function dlpEditor(p, detectors, n, onremove) {
  const id = (x) => `dlp-${n}-${x}`;
  const input = (x, attrs) => el('input', { id: id(x), ...attrs });
  const name = input('name', { value: p.name, maxlength: 100, required: true });
  const dirs = ['outbound', 'internal'].map((d) => {
    const box = el('input', { type: 'checkbox', id: id(`dir-${d}`), value: d });
    box.checked = p.directions.includes(d);
    return box;
  });
  const text = (x, values, rows) => {
    const a = el('textarea', { id: id(x), rows: rows || 3, spellcheck: 'false' });
    a.value = values.join('\n');
    return a;
  };
  const senders = text('senders', p.senders);
  const domains = text('domains', p.recipient_domains);
  const detect = detectors.map((d) => input(`det-${d}`, { type: 'number', min: 1, step: 1, value: p.detect[d] ?? '', placeholder: t('notUsed') }));
  const keywords = text('keywords', p.keywords, 4);
  // A pattern of several lines (from the file) cannot be edited one a line: it is kept as is.
  const multiline = p.patterns.some((x) => x.includes('\n'));
  const minKeywords = input('min-keywords', { type: 'number', min: 1, step: 1, value: p.min_keywords });
  const patterns = text('patterns', p.patterns, 3);
  if (multiline) { patterns.readOnly = true; patterns.title = t('dlpMultiline'); }
  const minPatterns = input('min-patterns', { type: 'number', min: 1, step: 1, value: p.min_patterns });
  const extensions = input('extensions', { value: p.extensions.join(' '), placeholder: 'zip 7z rar' });
  const maxMib = input('max-mib', { type: 'number', min: 1, step: 1, value: p.max_attachment_mib ?? '', placeholder: t('notUsed') });
  const encrypted = input('encrypted', { type: 'checkbox' });
  encrypted.checked = p.encrypted;
  const uninspectable = input('uninspectable', { type: 'checkbox' });
  uninspectable.checked = p.uninspectable;
  const action = el('select', { id: id('action') }, DLP_ACTIONS.map((a) => el('option', { value: a }, t(`dlp_${a}`))));
  action.value = p.action;
  const hours = input('hours', { type: 'number', min: 1, max: 2160, step: 1, value: p.approval_hours });
  const hoursLabel = el('label', { for: id('hours') }, t('approvalHours'), hours);
  const showHours = () => { hoursLabel.hidden = action.value !== 'hold'; };
  action.addEventListener('change', showHours);
  showHours();
  const label = (x, words, field) => el('label', { for: id(x) }, words, field);
  const number = (v) => (v.value === '' ? null : Number(v.value));
  // Keywords and patterns are kept as typed (spaces can matter); only empty lines go.
  const entries = (area) => area.value.split('\n').filter((x) => x.trim() !== '');
  let touched = false;
  const read = () => (!touched && p.name ? p : {
    name: name.value.trim(), directions: dirs.filter((b) => b.checked).map((b) => b.value),
    senders: lines(senders.value), recipient_domains: lines(domains.value),
    detect: Object.fromEntries(detectors.map((d, i) => [d, number(detect[i])]).filter(([, v]) => v !== null)),
    keywords: entries(keywords), min_keywords: number(minKeywords) ?? 1,
    patterns: multiline ? p.patterns : entries(patterns), min_patterns: number(minPatterns) ?? 1,
    extensions: extensions.value.split(/[\s,，;]+/).map((x) => x.replace(/^\./, '')).filter(Boolean),
    max_attachment_mib: number(maxMib), encrypted: encrypted.checked, uninspectable: uninspectable.checked,
    action: action.value, approval_hours: number(hours) ?? 72,
  });
  const touch = () => { touched = true; };
  const summary = el('summary', {}, el('strong', {}, p.name || t('newDlpPolicy')), ' · ', t(`dlp_${p.action}`), p.name ? ` · ${dlpConditions(p) || '–'}` : '');
  const node = el('details', { class: 'card dlp-policy', id: id('card'), open: p.name ? null : true }, summary,
    el('div', { class: 'grid' }, label('name', t('name'), name), label('action', t('dlpAction'), action), hoursLabel),
    el('fieldset', {}, el('legend', {}, t('direction')), dirs.map((b) => el('label', { class: 'check', for: b.id }, b, ' ', t(b.value)))),
    el('div', { class: 'lists' }, label('senders', t('dlpSenders'), senders), label('domains', t('dlpDomains'), domains)),
    el('h3', {}, t('dlpDetect')), el('div', { class: 'grid' }, detectors.map((d, i) => label(`det-${d}`, t(`det_${d}`), detect[i]))),
    el('div', { class: 'lists' }, el('div', {}, label('keywords', t('dlpKeywords'), keywords), label('min-keywords', t('dlpMinKeywords'), minKeywords)),
      el('div', {}, label('patterns', t('dlpPatterns'), patterns), label('min-patterns', t('dlpMinPatterns'), minPatterns))),
    el('div', { class: 'grid' }, label('extensions', t('dlpExtensions'), extensions), label('max-mib', t('dlpMaxMib'), maxMib)),
    el('label', { class: 'check', for: id('encrypted') }, encrypted, ' ', t('dlpEncrypted')),
    el('label', { class: 'check', for: id('uninspectable') }, uninspectable, ' ', t('dlpUninspectable')),
    el('div', { class: 'actions' }, el('button', { type: 'button', class: 'danger', id: id('remove'), onclick: () => {
      if (!p.name || confirm(fill(t('confirmDlpRemove'), { name: p.name }))) onremove();
    } }, t('dlpRemove'))));
  node.addEventListener('input', touch);
  node.addEventListener('change', touch);
  return { node, read };
}

async function dlpPage(saved, changes) {
  let p;
  try { p = await api('GET', '/api/policy'); } catch (e) { page(t('tab_dlp')); return fail(e); }
  const head = policyHead(p, saved, changes);
  const pol = p.policy;
  const detectors = p.dlp_detectors || [];
  const list = el('div', { id: 'dlp-policies' });
  let editors = [];
  let made = 0;
  const add = (policy) => {
    const ed = dlpEditor(policy, detectors, made++, () => { editors = editors.filter((x) => x !== ed); ed.node.remove(); });
    editors.push(ed);
    list.append(ed.node);
    return ed;
  };
  pol.dlp.forEach(add);
  const blank = { name: '', directions: ['outbound'], senders: [], recipient_domains: [], detect: {}, keywords: [], min_keywords: 1, patterns: [], min_patterns: 1,
    extensions: [], max_attachment_mib: null, encrypted: false, uninspectable: false, action: 'hold', approval_hours: 72 };
  const addButton = el('button', { type: 'button', class: 'plain', id: 'dlp-add', onclick: () => add({ ...blank }).node.querySelector('input').focus() }, t('dlpAdd'));
  const read = () => ({ policy: { ...pol, dlp: editors.map((e) => e.read()) } });
  const c = p.common;
  page(t('tab_dlp'), ...head.nodes, el('p', { class: 'muted' }, t('dlpHelp')),
    pol.dlp.length ? null : el('p', { class: 'muted', id: 'dlp-none' }, t('dlpNone')), list,
    c.editable ? el('div', { class: 'actions' }, addButton) : null,
    c.editable ? policySaveForm(c.version ? c.version.version : 0, read, head.msg, dlpPage) : null);
}

// Recipients' own lists: find a recipient, read and change their entries (in force at once).
function ownListsCard() {
  const msg = el('p', { role: 'status', id: 'own-result' });
  const say = (cls, text) => { msg.className = cls; msg.textContent = text; };
  const found = el('div', { id: 'own-owners' });
  const shown = el('div', { id: 'own-entries' });
  const owner = el('input', { id: 'own-owner', maxlength: 320, placeholder: t('ownerSearch'), 'aria-label': t('ownerSearch') });
  const ask = lastAsked();
  const find = async () => {
    const current = ask();
    try {
      const r = await api('GET', `/api/own-lists?${qs({ owner: owner.value.trim() })}`);
      if (!current()) return;
      if (r.applied === false) say('error', t('ownNotApplied'));
      found.replaceChildren(table([t('ownerAddr'), t('allowCount'), t('blockCount')],
        r.owners.map((o) => ({ key: o.owner, cells: [o.owner, String(o.allow), String(o.block)] })), open));
    } catch (e) { if (current()) say('error', e.message); }
  };
  const open = async (who) => {
    let r;
    try { r = await api('GET', `/api/own-lists/${encodeURIComponent(who)}`); } catch (e) { say('error', e.message); return; }
    const kind = el('select', { id: 'own-kind', 'aria-label': t('listKind') }, ['allow', 'block'].map((k) => el('option', { value: k }, t(`list_${k}`))));
    const adding = listArea('own-add', t('addEntries'), []);
    const remove = (e) => el('button', { class: 'danger', type: 'button', 'data-entry': e.entry, onclick: async () => {
      if (!confirm(fill(t('confirmOwnRemove'), { owner: r.owner, list: t(`list_${e.list}`), entry: e.entry }))) return;
      try {
        await api('DELETE', `/api/own-lists/${encodeURIComponent(r.owner)}?${qs({ list: e.list, entry: e.entry })}`);
        await open(r.owner); say('notice', t('ownRemoved')); find();
      } catch (x) { say('error', x.message); }
    } }, t('remove'));
    shown.replaceChildren(el('h3', {}, fill(t('ownEntries'), { owner: r.owner })),
      table([t('listKind'), t('entry'), t('addedAt'), t('addedBy'), ''],
        r.entries.map((e) => ({ cells: [t(`list_${e.list}`), e.entry, when(e.added_at), e.added_by, remove(e)] }))),
      el('div', { class: 'filters' }, el('label', { class: 'inline' }, t('listKind'), ' ', kind)), adding.node,
      el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'button', id: 'own-add-save', onclick: async () => {
        try {
          const a = await api('POST', `/api/own-lists/${encodeURIComponent(r.owner)}`, { list: kind.value, entries: adding.read() });
          await open(r.owner); say('notice', fill(t('ownAdded'), { n: a.added })); find();
        } catch (x) { say('error', x.message); }
      } }, t('addToList'))));
  };
  const form = el('form', { class: 'filters', id: 'own-find', onsubmit: (ev) => { ev.preventDefault(); find(); } }, owner,
    el('button', { class: 'primary', type: 'submit' }, t('findOwners')),
    el('button', { class: 'plain', type: 'button', id: 'own-open', onclick: () => { if (owner.value.trim()) open(owner.value.trim()); } }, t('openOwner')));
  find();
  return el('div', { class: 'card', id: 'own-lists' }, el('h2', {}, t('ownLists')), el('p', { class: 'muted' }, t('ownListsHelp')), form, msg, found, shown);
}

const roleName = (role) => t(`cert_${role.replaceAll('-', '_')}`);

// The certificates served, with install (PEM pair, PKCS#12, or the certificate issued for a
// request made here), request and remove where this console may change them.
function certificatesCard(s) {
  const msg = el('div', { role: 'status', id: 'cert-result' });
  // Into the card on screen: after an install the page is drawn anew.
  const say = (cls, ...lines) => { const m = $('cert-result') || msg; m.className = cls; m.replaceChildren(...lines.map((l) => el('p', {}, l))); };
  const rows = s.certificates.map((c) => ({ cells: [
    roleName(c.role), c.installed ? t('certInstalled') : c.file ? el('code', {}, c.file) : t('certGenerated'),
    c.error ? el('span', { class: 'error' }, c.error) : c.file ? `${c.subject}${c.issuer && c.issuer !== c.subject ? `（${t('certIssuer')} ${c.issuer}）` : ''}` : '–',
    c.names.join('，') || '–', c.file && !c.error ? `${when(c.not_after)}（${fill(t('daysLeft'), { n: c.days_left })}）` : '–',
    el('span', {}, c.error ? null : c.days_left < 0 && c.file ? el('span', { class: 'badge phish' }, t('certExpired'))
      : c.file && c.days_left < s.expiry_warning_days ? el('span', { class: 'badge spam' }, t('certExpiring')) : null,
    c.self_signed ? el('span', { class: 'badge' }, t('certSelfSigned')) : null,
    c.request_pending ? el('span', { class: 'badge' }, t('certRequestPending')) : null),
    s.certificates_editable ? el('span', { class: 'actions' },
      el('button', { class: 'plain', type: 'button', 'data-request': c.role, onclick: () => {
        if (c.request_pending && !confirm(fill(t('confirmCertReplaceRequest'), { role: roleName(c.role) }))) return;
        makeRequest(c.role, c.request_pending);
      } }, t('certRequest')),
      c.installed ? el('button', { class: 'danger', type: 'button', 'data-remove': c.role, onclick: async () => {
        if (!confirm(fill(t('confirmCertRemove'), { role: roleName(c.role) }))) return;
        try { await api('DELETE', `/api/certificates/${c.role}`); await systemPage(); } catch (e) { say('error', e.message); }
      } }, t('certRemove')) : null) : ''] }));
  const makeRequest = async (role, replace) => {
    try {
      const r = await api('POST', `/api/certificates/${role}/request`, replace ? { replace: true } : undefined);
      const link = el('a', { href: URL.createObjectURL(new Blob([r.csr], { type: 'application/pkcs10' })), download: `${s.hostname}-${role}.csr`, id: 'csr-download' }, t('certDownload'));
      msg.className = 'notice';
      msg.replaceChildren(el('p', {}, `${roleName(role)}：${t('certRequestDone')}`),
        el('textarea', { id: 'csr-text', readonly: true, rows: 8, 'aria-label': 'CSR' }, r.csr), el('p', {}, link));
    } catch (e) { say('error', e.message); }
  };
  const role = el('select', { name: 'role', id: 'cert-role', 'aria-label': t('certRole') }, s.certificates.map((c) => el('option', { value: c.role }, roleName(c.role))));
  const certFile = el('input', { type: 'file', id: 'cert-file', required: true, accept: '.pem,.crt,.cer,.p12,.pfx' });
  const keyFile = el('input', { type: 'file', id: 'cert-key-file', accept: '.pem,.key' });
  const password = el('input', { type: 'password', id: 'cert-password', autocomplete: 'off' });
  const form = el('form', { class: 'filters', id: 'cert-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const f = certFile.files[0];
    if (!f || !confirm(fill(t('confirmCertInstall'), { role: roleName(role.value) }))) return;
    const bytes = new Uint8Array(await f.arrayBuffer());
    const text = new TextDecoder().decode(bytes);
    let body;
    if (text.includes('-----BEGIN')) {
      body = { cert: text };
      if (keyFile.files[0]) body.key = await keyFile.files[0].text();
    } else if (!/\.(p12|pfx)$/i.test(f.name)) {
      say('error', t('certNotPem'));
      return;
    } else {
      let bin = '';
      for (const b of bytes) bin += String.fromCharCode(b);
      body = { pkcs12: btoa(bin) };
    }
    if (password.value) body.password = password.value;
    try {
      const r = await api('POST', `/api/certificates/${role.value}`, body);
      await systemPage();
      say('notice', fill(t('certInstallDone'), { f: r.sha256 }), ...r.warnings.map((w) => fill(t(`certWarn_${w.code}`), w)));
    } catch (e) { say('error', e.message); }
  } },
  el('label', { class: 'inline' }, t('certRole'), ' ', role),
  el('label', { class: 'inline' }, t('certFile'), ' ', certFile),
  el('label', { class: 'inline' }, t('certKeyFile'), ' ', keyFile),
  el('label', { class: 'inline' }, t('certPassword'), ' ', password),
  el('button', { class: 'primary', type: 'submit' }, t('certInstall')));
  return el('div', { class: 'card', id: 'system-certificates' }, el('h2', {}, t('certificates')),
    table([t('certRole'), t('certSource'), t('certSubject'), t('certNames'), t('certUntil'), '', ''], rows),
    el('p', { class: 'muted' }, t('certHelp')),
    s.certificates_editable ? el('h3', {}, t('certInstall')) : null, s.certificates_editable ? form : null, msg);
}

async function systemPage(flash) {
  let s, u, st;
  // The settings card fails alone (a configuration file that does not load now): the rest of
  // the page, upgrades and backups among it, stays usable.
  try { [s, u, st] = await Promise.all([api('GET', '/api/system'), api('GET', '/api/system/upgrade'), api('GET', '/api/system/settings').catch((e) => ({ error: e.message }))]); } catch (e) { page(t('system')); return fail(e); }
  const msg = el('p', { role: 'status', id: 'upgrade-result' });
  const file = el('input', { type: 'file', name: 'package', accept: '.jup', id: 'upgrade-file', required: true });
  // The package goes as the raw request body (not JSON), with the session's CSRF token.
  const form = el('form', { class: 'filters', id: 'upgrade-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const f = file.files[0];
    if (!f) return;
    if (!confirm(t('confirmUpgrade'))) return;
    msg.className = 'notice';
    msg.textContent = t('upgradeSending');
    try {
      const r = await fetch('/api/system/upgrade', { method: 'POST', body: f, credentials: 'same-origin',
        headers: { 'Accept': 'application/json', 'Content-Type': 'application/octet-stream', 'X-CSRF-Token': me ? me.csrf : '' } });
      const d = await r.json().catch(() => null);
      if (!r.ok) throw new Error((d && d.error) || r.statusText);
      msg.textContent = t('upgradeStarted') + d.version;
    } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  } }, el('label', {}, t('upgradePackage'), ' ', file), el('button', { class: 'primary', type: 'submit' }, t('upgradeApply')));
  const pairs = (rows) => el('dl', { class: 'kv' }, rows.flatMap(([k, v]) => [el('dt', {}, t(k)), el('dd', {}, v === null || v === undefined || v === '' ? '–' : v)]));
  const yes = (b) => (b ? t('yes') : t('no'));
  page(t('system'),
    el('div', { class: 'card', id: 'system-basics' }, el('h2', {}, t('basics')), pairs([
      ['version', s.version], ['hostname', s.hostname], ['smtpListen', s.smtp_listen.join('，')],
      ['consoleListen', s.console_listen], ['starttlsOn', yes(s.starttls)], ['scanOn', yes(s.scan_enabled)],
      ['queueActive', String(s.queue.active)], ['queueHeld', String(s.queue.held)]])),
    clockCard(s.clock),
    s.cluster ? clusterCard(s.cluster) : null,
    settingsCard(st, flash),
    certificatesCard(s),
    backupCard(!!s.cluster),
    el('div', { class: 'card', id: 'system-upgrade' }, el('h2', {}, t('upgrade')), pairs([
      ['running', u.running], ['currentRelease', u.current_release || t('factory')], ['previousRelease', u.previous_release],
      ['onTrial', u.trial ? `${u.trial.version}（${fill(t('trialStarts'), { n: u.trial.starts })}）` : t('no')],
      ['lastRollback', u.last_rollback], ['vendorKeys', u.trusted ? u.trust_file : fill(t('noTrust'), { f: u.trust_file })]]),
      u.trusted ? form : null, msg));
}

// The gateway's clock: its time in the configured zone, whether the system keeps it
// synchronised, and how far it is from this browser's (DKIM, TOTP, certificates and the audit
// log all trust it).
function clockCard(c) {
  const skew = Math.round(Date.now() / 1000 - c.now);
  const sync = c.synchronized === null ? el('span', { class: 'badge' }, t('ntpUnknown'))
    : c.synchronized ? el('span', { class: 'badge state-active' }, t('ntpSynced'))
      : el('span', { class: 'badge phish' }, c.ntp_enabled === false ? t('ntpOff') : t('ntpNotSynced'));
  return el('div', { class: 'card', id: 'system-clock' }, el('h2', {}, t('clock')), el('dl', { class: 'kv' },
    el('dt', {}, t('gatewayTime')), el('dd', {}, when(c.now)),
    el('dt', {}, t('timeZone')), el('dd', {}, c.zone),
    el('dt', {}, t('ntp')), el('dd', { id: 'clock-sync' }, sync),
    el('dt', {}, t('browserSkew')), el('dd', { id: 'clock-skew' }, Math.abs(skew) > 60
      ? el('span', { class: 'badge phish' }, fill(t('skewWarn'), { n: Math.abs(skew) })) : fill(t('skewOk'), { n: Math.abs(skew) }))));
}

// The nodes sharing this one's database (cluster mode): which are running, and what version
// each runs (an upgrade goes through them one at a time).
function clusterCard(c) {
  return el('div', { class: 'card', id: 'system-cluster' }, el('h2', {}, t('cluster')), el('p', { class: 'muted' }, t('clusterNote')),
    c.error ? el('p', { class: 'error' }, t('clusterUnreachable'), c.error) : null,
    table([t('nodeName'), t('nodeAddress'), t('nodeVersion'), t('nodeStarted'), t('nodeHeartbeat'), t('nodeState')],
      c.nodes.map((n) => ({ key: n.name, cells: [
        n.name === c.node ? `${n.name}（${t('thisNode')}）` : n.name, n.address, n.version, when(n.started), when(n.heartbeat),
        el('span', { class: n.alive ? 'badge state-active' : 'badge phish', 'data-node': n.name }, t(n.alive ? 'nodeAlive' : 'nodeGone'))] }))));
}

// The protected domains, routes and syslog collector: the configuration file's, or those changed
// here (kept apart from the file, in force after a restart the service manager does).
function settingsCard(st, flash) {
  if (st.error) return el('div', { class: 'card', id: 'system-settings' }, el('h2', {}, t('domainsRoutes')), el('p', { class: 'error', id: 'settings-state' }, st.error));
  const msg = el('p', { role: 'status', id: 'settings-result', class: flash ? 'notice' : '' }, flash || '');
  const shown = { ...st.file, ...(st.saved || {}) };
  const protectedBox = el('textarea', { id: 'set-protected', rows: 4 }, shown.protected.join('\n'));
  const syslog = el('input', { id: 'set-syslog', placeholder: 'logs.example.com:514', value: shown.syslog || '' });
  const smtpListen = el('textarea', { id: 'set-smtp-listen', rows: 2, spellcheck: 'false' }, shown.smtp_listen.join('\n'));
  const consoleListen = el('input', { id: 'set-console-listen', value: shown.console_listen || '', placeholder: '0.0.0.0:8443' });
  const rows = el('tbody', { id: 'set-routes' });
  const addRow = (r) => {
    const tls = el('select', { class: 'route-tls' }, st.tls_policies.map((p) => el('option', { value: p }, T[lang].tlsPolicies[p] || p)));
    tls.value = r.tls || 'verify-if-offered';
    const tr = el('tr', { class: 'route-row' },
      el('td', {}, el('input', { class: 'route-domain', value: r.domain || '', title: t('routeDomainHint'), 'aria-label': t('domain') })),
      el('td', {}, el('input', { class: 'route-host', value: r.host || '', 'aria-label': t('nextHop') })),
      el('td', {}, el('input', { class: 'route-port', type: 'number', min: 1, max: 65535, value: String(r.port || 25), 'aria-label': t('port') })),
      el('td', {}, tls),
      el('td', {}, el('button', { class: 'plain', type: 'button', onclick: () => tr.remove() }, t('routeRemove'))));
    // What the page does not edit (a name or pins to check the certificate against) stays.
    tr.kept = { tls_name: r.tls_name, tls_pins: r.tls_pins };
    rows.append(tr);
  };
  shown.routes.forEach(addRow);
  const read = () => ({
    protected: protectedBox.value.split('\n').map((x) => x.trim()).filter(Boolean),
    routes: [...rows.querySelectorAll('tr')].map((tr) => {
      const r = { domain: tr.querySelector('.route-domain').value.trim(), host: tr.querySelector('.route-host').value.trim(),
        port: Number(tr.querySelector('.route-port').value), tls: tr.querySelector('.route-tls').value };
      if (tr.kept.tls_name) r.tls_name = tr.kept.tls_name;
      if (tr.kept.tls_pins && tr.kept.tls_pins.length) r.tls_pins = tr.kept.tls_pins;
      return r;
    }),
    syslog: syslog.value.trim(),
    smtp_listen: smtpListen.value.split('\n').map((x) => x.trim()).filter(Boolean),
    console_listen: consoleListen.value.trim() || null,
  });
  // Only what differs from the configuration file is kept as changed here.
  const fileValue = { protected: st.file.protected, routes: st.file.routes, syslog: st.file.syslog || '', smtp_listen: st.file.smtp_listen, console_listen: st.file.console_listen };
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const form = el('form', { id: 'settings-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const now = read();
    const socket = /^(\[[0-9a-fA-F:.]+\]|\d{1,3}(\.\d{1,3}){3}):\d{1,5}$/;
    const wrong = [...now.smtp_listen.map((a) => ['smtp.listen', a]), ...(now.console_listen ? [['console.listen', now.console_listen]] : [])]
      .find(([, a]) => !socket.test(a));
    if (wrong) { msg.className = 'error'; msg.textContent = fill(t('err_field'), { f: t(`pk_${wrong[0]}`), why: `${wrong[1]}：${t('why_socket')}` }); return; }
    const body = Object.fromEntries(Object.entries(now).filter(([k, v]) => !same(v, fileValue[k])));
    try {
      if (Object.keys(body).length) await api('PUT', '/api/system/settings', body);
      else if (st.saved) await api('DELETE', '/api/system/settings');
      await systemPage(t('settingsSaved'));
    } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  } },
  el('label', {}, t('protectedDomains'), protectedBox),
  el('table', { class: 'routes' }, el('thead', {}, el('tr', {}, [t('domain'), t('nextHop'), t('port'), 'TLS', ''].map((h) => el('th', {}, h)))), rows),
  el('p', {}, el('button', { class: 'plain', type: 'button', id: 'route-add', onclick: () => addRow({}) }, t('routeAdd'))),
  el('label', {}, t('syslogTarget'), syslog),
  el('label', {}, t('smtpListenSet'), smtpListen),
  el('label', {}, t('consoleListenSet'), consoleListen),
  el('p', { class: 'muted' }, t('listenHelp')),
  el('p', { class: 'actions' }, el('button', { class: 'primary', type: 'submit', id: 'settings-save' }, t('settingsSave')),
    st.saved || st.unreadable ? el('button', { class: 'plain', type: 'button', id: 'settings-revert', onclick: async () => {
      if (!confirm(t('confirmSettingsRevert'))) return;
      try { await api('DELETE', '/api/system/settings'); await systemPage(t('settingsSaved')); } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
    } }, t('settingsRevert')) : null));
  const restart = async () => {
    if (!confirm(t('confirmRestart'))) return;
    msg.className = 'notice';
    msg.textContent = t('restarting');
    try { await api('POST', '/api/system/restart'); } catch (e) { msg.className = 'error'; msg.textContent = e.message; return; }
    // A console moved to another port answers there, not here.
    const moved = st.saved && st.saved.console_listen && st.saved.console_listen !== st.running.console_listen;
    if (moved) {
      const url = `https://${location.hostname}:${st.saved.console_listen.split(':').pop()}/`;
      msg.replaceChildren(t('consoleMoved'), ' ', el('a', { href: url, id: 'console-moved' }, url));
      return;
    }
    // The session is kept across the restart: the page comes back once a new run of the
    // gateway answers (the old one keeps answering while its sessions finish).
    for (let i = 0; i < 120; i += 1) {
      await new Promise((r) => setTimeout(r, 1000));
      try { const now = await api('GET', '/api/system/settings'); if (now.started !== st.started) return systemPage(t('restarted')); } catch (_) { /* not back yet */ }
    }
    msg.className = 'error';
    msg.textContent = t('restartSlow');
  };
  const keys = st.saved ? ['protected', 'routes', 'syslog', 'smtp_listen', 'console_listen'].filter((k) => st.saved[k] !== undefined && st.saved[k] !== null).map((k) => T[lang].setKeys[k]).join('、') : '';
  const state = st.unreadable ? el('p', { class: 'error', id: 'settings-state' }, fill(t('settingsRefused'), { why: st.unreadable }))
    : st.state.state === 'refused' ? el('p', { class: 'error', id: 'settings-state' }, fill(t('settingsRefused'), { why: st.state.reason }))
    : st.state.state === 'listeners_refused' ? el('p', { class: 'error', id: 'settings-state' }, fill(t('settingsListenersRefused'), { why: st.state.reason }))
    : el('p', { class: 'muted', id: 'settings-state' }, st.saved ? fill(t('settingsFromConsole'), { who: st.saved.changed_by, at: when(st.saved.changed_at), keys }) : t('settingsFromFile'));
  const pending = st.pending ? el('p', { class: 'notice', id: 'settings-pending' }, t('settingsPending'), ' ',
    st.restartable ? el('button', { class: 'primary', type: 'button', id: 'system-restart', onclick: restart }, t('restartNow')) : t('restartByHand')) : null;
  return el('div', { class: 'card', id: 'system-settings' }, el('h2', {}, t('domainsRoutes')), state, pending, form, msg);
}

// A backup sealed with a passphrase typed twice, downloaded as a file; restoring it is root's
// work at the appliance, so the card only says how.
function backupCard(clustered) {
  const msg = el('p', { role: 'status', id: 'backup-result' });
  const pass = el('input', { type: 'password', id: 'backup-pass', minlength: 12, required: true, autocomplete: 'new-password' });
  const again = el('input', { type: 'password', id: 'backup-pass2', minlength: 12, required: true, autocomplete: 'new-password' });
  const form = el('form', { class: 'filters', id: 'backup-form', onsubmit: async (ev) => {
    ev.preventDefault();
    if (pass.value !== again.value) { msg.className = 'error'; msg.textContent = t('backupMismatch'); return; }
    msg.className = 'notice';
    msg.textContent = t('backupMaking');
    try {
      const r = await fetch('/api/system/backup', { method: 'POST', credentials: 'same-origin', body: JSON.stringify({ passphrase: pass.value }),
        headers: { 'Accept': 'application/octet-stream, application/json', 'Content-Type': 'application/json', 'X-CSRF-Token': me ? me.csrf : '' } });
      if (!r.ok) throw new Error(errorText(await r.json().catch(() => null)) || r.statusText);
      const name = (/filename="([^"]+)"/.exec(r.headers.get('Content-Disposition') || '') || [])[1] || 'jianmen.jbk';
      const link = el('a', { href: URL.createObjectURL(await r.blob()), download: name, id: 'backup-link' });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60000);
      const outside = Number(r.headers.get('X-Backup-Outside') || 0);
      pass.value = again.value = '';
      msg.textContent = fill(t('backupDone'), { f: name, n: r.headers.get('X-Backup-Files') }) + (outside ? ' ' + fill(t('backupOutside'), { n: outside }) : '');
    } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  } },
  el('label', { class: 'inline' }, t('backupPass'), ' ', pass), el('label', { class: 'inline' }, t('backupPass2'), ' ', again),
  el('button', { class: 'primary', type: 'submit', id: 'backup-download' }, t('backupDownload')));
  return el('div', { class: 'card', id: 'system-backup' }, el('h2', {}, t('backup')), el('p', { class: 'muted' }, t('backupHelp')),
    clustered ? el('p', { class: 'notice', id: 'backup-clustered' }, t('backupClustered')) : null, form, msg,
    el('p', { class: 'muted' }, t('restoreHelp')),
    el('pre', { id: 'restore-command' }, t('restoreCommand')));
}

// Whom this console role may manage (the server checks it too): system administrators their
// own kind, the security administrator its per-domain delegates.
function manages(a) {
  return me.account.role === 'system' ? a.role === 'system' && !a.domain : a.role === 'security' && !!a.domain;
}

async function accountsPage(shown) {
  const msg = el('p', { role: 'status', id: 'account-result' });
  // A new or reset password is shown once, on its own card, until the page is left.
  const onetime = shown ? el('div', { class: 'card onetime', id: 'onetime', role: 'alert' },
    el('h2', {}, fill(t('onetimeTitle'), { name: shown.name })),
    el('p', {}, el('code', { id: 'onetime-password' }, shown.initial_password), ' ',
      el('button', { class: 'plain', type: 'button', onclick: () => navigator.clipboard && navigator.clipboard.writeText(shown.initial_password) }, t('copy'))),
    el('p', { class: 'muted' }, t('onetimeHelp'))) : null;
  const act = async (a, what) => {
    const question = { reset: 'confirmReset', delete: 'confirmDeleteAccount', unlock: 'confirmUnlock' }[what];
    if (!confirm(fill(t(question), { name: a.name }))) return;
    try { const r = await api('POST', `/api/accounts/${encodeURIComponent(a.name)}/${what}`); await accountsPage(r && r.initial_password ? r : null); } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  };
  let list;
  try { list = await api('GET', '/api/accounts'); } catch (e) { page(t('accounts')); return fail(e); }
  const form = el('form', { class: 'filters', id: 'account-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const f = Object.fromEntries(new FormData(form));
    try { const r = await api('POST', '/api/accounts', { name: f.name, role: f.role, domain: f.domain || null }); await accountsPage(r); } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  } },
  el('label', { class: 'inline' }, t('username'), ' ', el('input', { name: 'name', id: 'account-name', required: true, maxlength: 64, autocomplete: 'off' })),
  el('label', { class: 'inline' }, t('role'), ' ', el('select', { name: 'role' }, [me.account.role].map((r) => el('option', { value: r }, t('roles')[r])))),
  me.account.role === 'security' ? el('label', { class: 'inline' }, t('domain'), ' ', el('input', { name: 'domain', id: 'account-domain', required: true })) : null,
  el('button', { class: 'primary', type: 'submit' }, t('create')));
  const now = Date.now() / 1000;
  page(t('accounts'), onetime, el('p', { class: 'muted' }, t('atAppliance')),
    el('div', { class: 'card' }, el('h2', {}, t('newAccount')), el('p', { class: 'muted' }, fill(t('passwordRules'), { n: me.password_min_length || 12 })), form, msg),
    table([t('username'), t('role'), t('domain'), t('created'), t('lastLogin'), t('locked'), ''],
      list.map((a) => ({ cells: [a.name, t('roles')[a.role], a.domain || '', when(a.created_at), when(a.last_login), a.locked_until > now ? when(a.locked_until) : '',
        manages(a) ? el('span', { class: 'actions' }, el('button', { class: 'plain', 'data-act': 'reset', onclick: () => act(a, 'reset') }, t('reset')),
          a.locked_until > now ? el('button', { class: 'plain', 'data-act': 'unlock', onclick: () => act(a, 'unlock') }, t('unlock')) : null,
          el('button', { class: 'danger', 'data-act': 'delete', onclick: () => act(a, 'delete') }, t('delete'))) : ''] }))));
}

async function auditPage() {
  const result = el('p', { role: 'status', id: 'verify-result' });
  let entries;
  try { entries = await api('GET', '/api/audit?limit=200'); } catch (e) { page(t('audit')); return fail(e); }
  page(t('audit'),
    el('div', { class: 'actions' }, el('a', { class: 'plain', id: 'export', href: '/api/audit/export', download: '' }, t('export')), el('button', { class: 'primary', id: 'verify', onclick: async () => {
      try { const v = await api('GET', '/api/audit/verify'); result.className = v.intact ? 'notice' : 'error'; result.textContent = v.intact ? `${t('intact')} (${v.rows})` : `${t('broken')}: #${v.seq} ${v.reason}`; } catch (e) { result.className = 'error'; result.textContent = e.message; }
    } }, t('verify'))), result,
    table(['#', t('time'), t('actor'), t('action'), t('detail')], entries.map((e) => ({ cells: [e.seq, whenText(e.at), e.actor,
      el('span', {}, T[lang].auditNames[e.action] || e.action, ' ', el('code', { class: 'muted' }, e.action)), e.detail] }))));
}

const stateBadge = (live) => el('span', { class: `badge state-${live.state}` },
  t(`state_${live.state}`), live.promoted ? ` · ${t('promoted')}` : '');

// Drain a channel, or put it (back) into rotation; `done` shows the outcome.
function channelButtons(name, live, done) {
  const act = async (ev, what, outcome) => {
    ev.stopPropagation();
    if (what === 'drain' && !confirm(t('confirmDrain'))) return;
    try {
      await api('POST', `/api/channels/${encodeURIComponent(name)}/${what}`);
      done('notice', t(outcome));
    } catch (e) { done('error', e.message); }
  };
  return el('span', { class: 'actions' },
    live.state === 'drained' ? null : el('button', { class: 'danger', id: `drain-${name}`, onclick: (ev) => act(ev, 'drain', 'drainedNow') }, t('drain')),
    live.state === 'active' || live.state === 'listed' ? null
      : el('button', { class: 'primary', id: `activate-${name}`, onclick: (ev) => act(ev, 'activate', 'activatedNow') }, t('activate')));
}

async function channelsPage(selected) {
  let r;
  try { r = await api('GET', '/api/channels'); } catch (e) { page(t('channels')); return fail(e); }
  const msg = el('p', { role: 'status', id: 'channel-result' });
  const done = (cls, text) => { channelsPage(selected).then(() => { msg.className = cls; msg.textContent = text; main().append(msg); }); };
  const pct = (x) => `${Math.round(x * 100)}%`;
  const w = r.watch;
  page(t('channels'), el('p', { class: 'muted' }, t('channelsIntro')),
    el('p', {}, `${t('watchedLists')}: `, w.dnsbl.length ? w.dnsbl.join(', ') : t('passiveOnly')),
    table([t('name'), t('kind'), t('egress'), t('state'), t('listings'), t('successRate'), t('delivered'), t('deferred'), t('inFlight'), t('recentErrors'), ''],
      r.channels.map(({ channel: c, live }) => ({ key: c.name, cells: [c.name, t(`kind_${c.kind}`), c.address || '', stateBadge(live),
        live.listings.join(', '), pct(live.success), String(live.delivered), String(live.deferred), `${c.in_flight}/${c.max_connections}`,
        live.errors.length ? live.errors[live.errors.length - 1][1] : '', channelButtons(c.name, live, done)] })),
      (key) => { location.hash = `#/channels/${encodeURIComponent(key)}`; }));
  const one = r.channels.find((x) => x.channel.name === selected);
  if (!one) return;
  main().append(
    el('div', { class: 'card', id: 'channel-detail' }, el('h2', {}, `${one.channel.name} · ${t('history')}`),
      el('p', {}, stateBadge(one.live), ' ', one.live.reason, ' · ', t('since'), ' ', when(one.live.since)),
      table([t('time'), t('from'), t('to'), t('reason'), t('actor')],
        one.history.map((h) => ({ cells: [when(h.at), t(`state_${h.from}`), t(`state_${h.to}`), h.reason, h.actor] })))),
    el('div', { class: 'card' }, el('h2', {}, t('refusals')),
      table([t('time'), t('domain'), t('detail')], one.live.refusals.map((x) => ({ cells: [when(x.at), x.domain, x.reply] })))),
    el('div', { class: 'card' }, el('h2', {}, t('recentErrors')),
      table([t('time'), t('detail')], one.live.errors.map(([at, e]) => ({ cells: [when(at), e] })))));
}

const recallState = (s) => el('span', { class: `badge rstate-${s}` }, t(`rstate_${s}`));
const TERMS = ['sha256', 'url', 'domain', 'sender', 'message_id', 'queue_id'];

async function recallPage() {
  const out = el('div', { id: 'hunt-results' });
  const reason = el('input', { id: 'recall-reason', placeholder: t('recallReason'), 'aria-label': t('recallReason') });
  const recallOne = async (ev, queueId) => {
    ev.stopPropagation();
    if (!confirm(t('confirmRecall'))) return;
    try {
      const r = await api('POST', '/api/recall', { queue_id: queueId, reason: reason.value });
      location.hash = `#/recall/${r.recall.id}`;
    } catch (e) { out.append(el('p', { class: 'error', role: 'alert' }, e.message)); }
  };
  const kind = el('select', { id: 'hunt-kind', 'aria-label': t('term') }, TERMS.map((k) => el('option', { value: k }, t(`term_${k}`))));
  const value = el('input', { id: 'hunt-value', placeholder: t('value'), 'aria-label': t('value') });
  const form = el('form', { class: 'filters', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const r = await api('GET', `/api/hunt?${qs({ [kind.value]: value.value.trim() })}`);
      out.replaceChildren(table([t('time'), t('sender'), t('subject'), t('recipients'), t('queueId'), ''],
        r.messages.map((m) => ({ cells: [when(m.at), m.header_from || m.mail_from, m.subject, m.rcpts.join(', '), m.queue_id,
          el('button', { class: 'danger', 'data-recall': m.queue_id, onclick: (ev) => recallOne(ev, m.queue_id) }, t('recallIt'))] }))));
    } catch (e) { out.replaceChildren(el('p', { class: 'error', role: 'alert' }, e.message)); }
  } }, kind, value, el('button', { class: 'primary', type: 'submit' }, t('search')));
  let recent = [];
  try { recent = (await api('GET', '/api/recall')).recalls; } catch (e) { recent = []; }
  page(t('recall'), el('p', { class: 'muted' }, t('recallIntro')),
    el('div', { class: 'card' }, el('h2', {}, t('hunt')), form, reason, out),
    el('div', { class: 'card' }, el('h2', {}, t('recalls')),
      table([t('time'), t('subject'), t('sender'), t('actor'), t('progress')],
        recent.map((x) => ({ key: x.recall.id, cells: [when(x.recall.created_at), x.recall.subject, x.recall.mail_from, x.recall.actor,
          Object.entries(x.states).map(([s, n]) => `${t(`rstate_${s}`)} ${n}`).join('，')] })),
        (key) => { location.hash = `#/recall/${key}`; })));
}

async function recallItem(id) {
  let d;
  try { d = await api('GET', `/api/recall/${encodeURIComponent(id)}`); } catch (e) { page(t('recall')); return fail(e); }
  const r = d.recall;
  const done = d.mailboxes.filter((m) => !['pending', 'working', 'restoring'].includes(m.state)).length;
  const msg = el('p', { role: 'status', id: 'recall-result' });
  const canUndo = r.action === 'move' && d.mailboxes.some((m) => m.state === 'recalled' || m.state === 'restore_failed');
  page(`${t('recall')} · ${r.subject}`,
    el('p', {}, el('a', { href: '#/recall' }, `← ${t('back')}`)),
    el('div', { class: 'card' }, el('dl', { class: 'kv' },
      el('dt', {}, t('subject')), el('dd', {}, r.subject),
      el('dt', {}, t('sender')), el('dd', {}, r.mail_from),
      el('dt', {}, 'Message-ID'), el('dd', {}, r.message_id),
      el('dt', {}, t('actor')), el('dd', {}, r.actor),
      el('dt', {}, t('reason')), el('dd', {}, r.reason),
      el('dt', {}, t('progress')), el('dd', {},
        el('progress', { id: 'recall-progress', max: String(d.mailboxes.length), value: String(done) }), ` ${done}/${d.mailboxes.length}`)),
      canUndo ? el('button', { class: 'primary', id: 'undo', onclick: async () => {
        try { await api('POST', `/api/recall/${encodeURIComponent(id)}/undo`); msg.className = 'notice'; msg.textContent = t('undone'); recallItem(id); }
        catch (e) { msg.className = 'error'; msg.textContent = e.message; }
      } }, t('undo')) : null, msg),
    el('div', { class: 'card' }, table([t('mailbox'), t('status'), t('folders'), t('detail'), t('time')],
      d.mailboxes.map((m) => ({ cells: [m.mailbox, recallState(m.state), m.folders.map(([f, n]) => `${f} (${n})`).join(', '), m.detail, when(m.updated_at)] })))));
  // Follow the work while any mailbox is still under way (and this page is still shown).
  if (done < d.mailboxes.length) {
    setTimeout(() => { if (location.hash === `#/recall/${id}`) recallItem(id); }, 1000);
  }
}

const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => String(values[k] ?? ''));

async function intelPage(search) {
  let o, ind, h;
  try {
    [o, ind, h] = await Promise.all([api('GET', '/api/intel'), api('GET', `/api/intel/indicators?${qs({ q: search || '' })}`), api('GET', '/api/intel/hits')]);
  } catch (e) { page(t('intel')); return fail(e); }
  const msg = el('p', { role: 'status', id: 'intel-result' });
  const file = el('input', { type: 'file', accept: '.json,application/json', id: 'intel-file', required: true });
  const importForm = el('form', { class: 'filters', id: 'intel-import', onsubmit: async (ev) => {
    ev.preventDefault();
    const f = file.files[0];
    if (!f) return;
    try {
      const r = await fetch('/api/intel/import', { method: 'POST', body: f, credentials: 'same-origin',
        headers: { 'Accept': 'application/json', 'Content-Type': 'application/json', 'X-CSRF-Token': me ? me.csrf : '' } });
      const d = await r.json().catch(() => null);
      if (!r.ok) throw new Error((d && d.error) || r.statusText);
      await intelPage(search);
      const shown = $('intel-result');
      shown.className = 'notice';
      shown.textContent = fill(t('imported'), d);
    } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  } }, el('label', {}, t('importIntel'), ' ', file), el('button', { type: 'submit' }, t('importApply')));
  const now = ind.now;
  const validity = (i) => i.revoked ? t('revoked')
    : i.valid_until && i.valid_until <= now ? `${t('expired')} ${when(i.valid_until)}`
      : i.valid_until ? when(i.valid_until) : t('noEnd');
  const query = el('input', { id: 'intel-search', value: search || '', placeholder: t('search'), 'aria-label': t('search') });
  const searchForm = el('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); intelPage(query.value.trim()); } },
    query, el('button', { class: 'primary', type: 'submit' }, t('search')));
  const recallHit = async (hit) => {
    if (!confirm(t('confirmRecall'))) return;
    try {
      const r = await api('POST', `/api/intel/hits/${hit.id}/recall`);
      location.hash = `#/recall/${r.recall}`;
    } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  };
  page(t('intel'), el('p', { class: 'muted' }, t('intelIntro')),
    el('div', { class: 'card' }, el('dl', { class: 'kv' },
      el('dt', {}, t('inForce')), el('dd', { id: 'intel-in-force' }, String(o.in_force)),
      el('dt', {}, t('onMatch')), el('dd', {}, t(`onMatch_${o.on_match}`))), importForm, msg),
    el('div', { class: 'card', id: 'intel-sources' }, el('h2', {}, t('sources')),
      table([t('name'), t('lastPoll'), t('lastOk'), t('received'), t('unusable'), t('cursor'), t('detail')],
        o.sources.map((s) => ({ cells: [s.name, when(s.last_poll), when(s.last_ok), String(s.received), String(s.skipped), s.cursor,
          s.last_error ? el('span', { class: 'error' }, s.last_error) : ''] })))),
    el('div', { class: 'card', id: 'intel-hits' }, el('h2', {}, t('hits')),
      table([t('time'), t('indicator'), t('observables'), t('queueId'), t('status'), ''],
        h.hits.map((x) => ({ cells: [when(x.at), x.indicator_name || x.indicator_id, `${x.kind} ${x.value}`, x.queue_id,
          el('span', { class: `badge hstate-${x.state}` }, t(`hstate_${x.state}`)),
          x.recall_id ? el('a', { href: `#/recall/${encodeURIComponent(x.recall_id)}` }, t('openRecall'))
            : el('button', { class: 'danger', 'data-hit': String(x.id), onclick: () => recallHit(x) }, t('recallIt'))] })))),
    el('div', { class: 'card', id: 'intel-indicators' }, el('h2', {}, t('indicators')), searchForm,
      table([t('name'), t('observables'), t('sources'), t('validUntil'), t('time')],
        ind.indicators.map((i) => ({ cells: [i.name, i.observables.map(([k, v]) => `${k} ${v}`).join('\n'), i.source, validity(i), when(i.added_at)] })))));
}

async function linksPage() {
  let p, c;
  try { [p, c] = await Promise.all([api('GET', '/api/links'), api('GET', '/api/tracking?kind=clicked&limit=100')]); }
  catch (e) { page(t('links')); return fail(e); }
  const yn = (b) => t(b ? 'yes' : 'no');
  const policy = p.enabled ? el('dl', { class: 'kv', id: 'links-policy' },
    el('dt', {}, t('baseUrl')), el('dd', {}, p.base_url),
    el('dt', {}, t('skipDomains')), el('dd', {}, p.skip.join(', ')),
    el('dt', {}, t('maxAgeDays')), el('dd', {}, String(p.max_age_days)),
    el('dt', {}, t('onBad')), el('dd', {}, t(`onBad_${p.on_bad}`)),
    el('dt', {}, t('notifyTo')), el('dd', {}, p.notify.join(', ')),
    el('dt', {}, t('recallOnBad')), el('dd', {}, yn(p.recall)),
    el('dt', {}, t('perRcptMax')), el('dd', {}, String(p.per_recipient_max)))
    : el('p', { class: 'muted', id: 'links-policy' }, t('linksOff'));
  page(t('links'), el('p', { class: 'muted' }, t('linksIntro')), el('div', { class: 'card' }, policy),
    el('div', { class: 'card', id: 'links-clicks' }, el('h2', {}, t('clicks')),
      table([t('time'), t('rcpt'), t('queueId'), t('clientIp'), t('class'), t('detail')],
        c.events.map((e) => ({ cells: [when(e.at), e.rcpts, e.queue_id, e.client_ip, e.class ? badge(e.class) : '', e.detail] })))));
}

const pct = (n, d) => (d ? `${Math.round((n * 1000) / d) / 10}%` : '–');
const secs = (s) => (s === null || s === undefined ? '–' : s < 60 ? `${s}s` : s < 3600 ? `${Math.round(s / 60)}m` : `${Math.round(s / 360) / 10}h`);

// Click, submission and report rates of the drills, oldest first.
function trendChart(drills) {
  const node = el('div', { class: 'chart', id: 'drill-trend' });
  const shown = drills.filter((d) => d.tally.sent > 0).slice(0, 24).reverse();
  const rate = (n, d) => (d ? Math.round((n * 1000) / d) / 10 : 0);
  drawChart(node, {
    legend: { top: 0 },
    grid: { left: 48, right: 16, top: 36, bottom: 56 },
    tooltip: { trigger: 'axis', renderMode: 'richText', valueFormatter: (v) => `${v}%` },
    xAxis: { type: 'category', data: shown.map((d) => d.campaign.name), axisLabel: { interval: 0, rotate: shown.length > 6 ? 30 : 0 } },
    yAxis: { type: 'value', name: '%', min: 0, max: 100 },
    series: [['clicked', '#cf222e'], ['submitted', '#a40e26'], ['reported', '#2da44e']].map(([k, color]) => ({
      name: t(k), type: 'bar', color, barMaxWidth: 28, data: shown.map((d) => rate(d.tally[k], d.tally.sent)) })),
  }).catch(fail);
  return node;
}

const tallyCells = (x) => [String(x.targets), String(x.sent), pct(x.opened, x.sent), pct(x.clicked, x.sent), pct(x.submitted, x.sent), pct(x.reported, x.sent), secs(x.median_click_secs)];
const tallyHeaders = () => [t('targets'), t('sent'), t('opened'), t('clicked'), t('submitted'), t('reported'), t('medianClick')];

async function drillsPage() {
  let d, tm;
  try { [d, tm] = await Promise.all([api('GET', '/api/drills'), api('GET', '/api/drills/templates')]); }
  catch (e) { page(t('drills')); return fail(e); }
  const msg = el('p', { role: 'status', id: 'drill-result' });
  const template = el('select', { id: 'drill-template' }, tm.templates.map((x) => el('option', { value: x.id }, x.title)));
  const frame = el('iframe', { id: 'drill-preview', sandbox: '', title: t('preview'), class: 'preview' });
  const subject = el('p', { class: 'muted', id: 'drill-subject' });
  const show = () => {
    const x = tm.templates.find((y) => y.id === template.value);
    if (!x) return;
    subject.textContent = `${x.from_name} · ${x.subject}`;
    frame.srcdoc = x.html;
  };
  template.addEventListener('change', show);
  const input = (id, attrs) => el('input', { id, ...attrs });
  const form = el('form', { class: 'card stacked', id: 'drill-new', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const start = $('drill-start').value ? zoneTime($('drill-start').value) : 0;
      const r = await api('POST', '/api/drills', { name: $('drill-name').value, template_id: template.value,
        from_name: $('drill-from-name').value, from_address: $('drill-from').value, targets_csv: $('drill-targets').value,
        start_at: start, rate_per_minute: Number($('drill-rate').value) });
      location.hash = `#/drills/${r.campaign.id}`;
    } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  } }, el('h2', {}, t('newDrill')),
  el('label', { for: 'drill-name' }, t('name')), input('drill-name', { required: true }),
  el('label', { for: 'drill-template' }, t('template')), template, subject, frame,
  el('label', { for: 'drill-from-name' }, t('fromName')), input('drill-from-name', {}),
  el('label', { for: 'drill-from' }, t('fromAddress')), input('drill-from', { required: true, type: 'email' }),
  el('label', { for: 'drill-targets' }, t('targetsCsv')), el('textarea', { id: 'drill-targets', rows: '6', required: true }),
  el('label', { for: 'drill-start' }, t('startAt')), input('drill-start', { type: 'datetime-local' }),
  el('label', { for: 'drill-rate' }, t('ratePerMinute')), input('drill-rate', { type: 'number', min: '1', value: '60', required: true }),
  msg, el('button', { class: 'primary', type: 'submit', id: 'drill-create' }, t('createDrill')));
  // The template editor: a built-in or custom template as the start of a custom one.
  const emsg = el('p', { role: 'status', id: 'template-result' });
  const field = (id, label, node) => [el('label', { for: id }, label), node];
  const editor = el('form', { class: 'card stacked', id: 'drill-editor', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const saved = await api('POST', '/api/drills/templates', { id: $('tpl-id').value, title: $('tpl-title').value,
        from_name: $('tpl-from').value, subject: $('tpl-subject').value, html: $('tpl-html').value, landing: $('tpl-landing').value });
      emsg.className = 'notice';
      emsg.textContent = `${t('saved')}: ${saved.id}`;
      tm = await api('GET', '/api/drills/templates');
      template.replaceChildren(...tm.templates.map((x) => el('option', { value: x.id }, x.title)));
      template.value = saved.id;
      show();
    } catch (e) { emsg.className = 'error'; emsg.textContent = e.message; }
  } }, el('h2', {}, t('editTemplate')), el('p', { class: 'muted' }, t('templateHelp')),
  el('input', { id: 'tpl-id', type: 'hidden' }),
  ...field('tpl-title', t('name'), el('input', { id: 'tpl-title', required: true })),
  ...field('tpl-from', t('fromName'), el('input', { id: 'tpl-from', required: true })),
  ...field('tpl-subject', t('subject'), el('input', { id: 'tpl-subject', required: true })),
  ...field('tpl-landing', t('landingTitle'), el('input', { id: 'tpl-landing', required: true })),
  ...field('tpl-html', 'HTML', el('textarea', { id: 'tpl-html', rows: '8', required: true })),
  emsg, el('button', { type: 'submit', id: 'tpl-save' }, t('saveTemplate')));
  const load = () => {
    const x = tm.templates.find((y) => y.id === template.value);
    if (!x) return;
    $('tpl-id').value = x.id.startsWith('builtin:') ? '' : x.id;
    $('tpl-title').value = x.id.startsWith('builtin:') ? `${x.title} *` : x.title;
    $('tpl-from').value = x.from_name;
    $('tpl-subject').value = x.subject;
    $('tpl-landing').value = x.landing;
    $('tpl-html').value = x.html;
  };
  template.addEventListener('change', load);
  page(t('drills'), el('p', { class: 'muted' }, t('drillsIntro')),
    el('div', { class: 'card' }, el('h2', {}, t('trend')), trendChart(d.drills)),
    el('div', { class: 'card', id: 'drill-list' }, table([t('name'), t('status'), t('time'), ...tallyHeaders()],
      d.drills.map((x) => ({ key: x.campaign.id, cells: [x.campaign.name, t(`dstate_${x.campaign.state}`), when(x.campaign.start_at), ...tallyCells(x.tally)] })),
      (key) => { location.hash = `#/drills/${key}`; })),
    form, editor);
  show();
  load();
}

// One drill's funnel: sent, opened, clicked, submitted, reported, as bars with counts and rates.
function funnelChart(x) {
  const node = el('div', { class: 'funnel', id: 'drill-funnel' });
  const steps = ['sent', 'opened', 'clicked', 'submitted', 'reported'];
  const colors = { sent: '#0969da', opened: '#8250df', clicked: '#cf222e', submitted: '#a40e26', reported: '#2da44e' };
  drawChart(node, {
    grid: { left: 96, right: 120, top: 8, bottom: 8 },
    tooltip: { trigger: 'item', renderMode: 'richText' },
    xAxis: { type: 'value', show: false, max: Math.max(x.sent, 1) },
    yAxis: { type: 'category', inverse: true, data: steps.map((s) => t(s)) },
    series: [{ type: 'bar', barWidth: 22, data: steps.map((s) => ({ value: x[s], itemStyle: { color: colors[s] } })),
      label: { show: true, position: 'right', formatter: ({ value }) => `${value} (${pct(value, x.sent)})` } }],
  }).catch(fail);
  return node;
}

async function drillItem(id) {
  let r;
  try { r = await api('GET', `/api/drills/${encodeURIComponent(id)}`); } catch (e) { page(t('drills')); return fail(e); }
  const c = r.campaign;
  const msg = el('p', { role: 'status', id: 'drill-result' });
  const act = (what) => async () => {
    try { await api('POST', `/api/drills/${encodeURIComponent(id)}/${what}`); drillItem(id); }
    catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  };
  page(`${t('drills')} · ${c.name}`,
    el('p', { class: 'noprint' }, el('a', { href: '#/drills' }, `← ${t('back')}`)),
    el('div', { class: 'card' }, el('dl', { class: 'kv' },
      el('dt', {}, t('status')), el('dd', { id: 'drill-state' }, t(`dstate_${c.state}`)),
      el('dt', {}, t('template')), el('dd', {}, c.template_id),
      el('dt', {}, t('sender')), el('dd', {}, `${c.from_name} <${c.from_address}>`),
      el('dt', {}, t('subject')), el('dd', {}, c.subject),
      el('dt', {}, t('startAt')), el('dd', {}, when(c.start_at)),
      el('dt', {}, t('actor')), el('dd', {}, c.actor)),
    el('p', { class: 'noprint' },
      ['draft', 'paused'].includes(c.state) ? el('button', { class: 'primary', id: 'drill-schedule', onclick: act('schedule') }, t('schedule')) : null,
      c.state === 'scheduled' ? el('button', { id: 'drill-pause', onclick: act('pause') }, t('pause')) : null,
      ' ', el('a', { href: `/api/drills/${encodeURIComponent(id)}/export.csv`, id: 'drill-export' }, t('exportCsv')),
      ' ', el('button', { id: 'drill-print', onclick: () => window.print() }, t('printReport'))), msg),
    el('div', { class: 'card', id: 'drill-total' }, funnelChart(r.total), table(tallyHeaders(), [{ cells: tallyCells(r.total) }])),
    el('div', { class: 'card', id: 'drill-departments' }, el('h2', {}, t('department')),
      table([t('department'), ...tallyHeaders()], r.departments.map(([dep, x]) => ({ cells: [dep || '–', ...tallyCells(x)] })))),
    el('div', { class: 'card' }, table([t('rcpt'), t('name'), t('department'), t('sent'), t('opened'), t('clicked'), t('submitted'), t('reported')],
      r.people.map((p) => ({ cells: [p.email, p.name, p.department, when(p.sent_at), when(p.opened_at), when(p.clicked_at), when(p.submitted_at), when(p.reported_at)] })))));
  if (c.state === 'scheduled') setTimeout(() => { if (location.hash === `#/drills/${id}`) drillItem(id); }, 3000);
}

async function route() {
  navSeq += 1;
  if (!me) {
    // A sign-in may finish while this asks: what it set wins over a stale "not signed in".
    let session = null;
    try { session = await api('GET', '/api/session'); } catch (_) { session = null; }
    if (!me) me = session;
  }
  renderChrome();
  const parts = location.hash.replace(/^#\//, '').split('/');
  if (!me) return loginPage();
  if (me.account.must_change || parts[0] === 'password') return passwordPage();
  const allowed = pagesOf(me.account);
  const name = allowed.includes(parts[0]) ? parts[0] : allowed[0];
  if ((name === 'quarantine' || name === 'approvals') && parts[1]) return quarantineItem(parts[1]);
  if (name === 'risk' && parts[1]) return riskItem(decodeURIComponent(parts[1]));
  if (name === 'channels') return channelsPage(parts[1] && decodeURIComponent(parts[1]));
  if (name === 'recall' && parts[1]) return recallItem(decodeURIComponent(parts[1]));
  if (name === 'drills' && parts[1]) return drillItem(decodeURIComponent(parts[1]));
  if (name === 'tracking' && parts[1]) return trackingItem(decodeURIComponent(parts[1]));
  if (name === 'policy' && !me.account.domain && parts[1] === 'attachments') return attachmentsPage();
  if (name === 'policy' && !me.account.domain && parts[1] === 'dlp') return dlpPage();
  return { dashboard: () => dashboardPage(), approvals: approvalsPage, risk: riskPage, recall: recallPage, intel: () => intelPage(), links: linksPage, drills: drillsPage, quarantine: () => quarantinePage(), tracking: trackingPage, policy: policyPage,
    system: systemPage, accounts: accountsPage, audit: auditPage }[name]();
}

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', () => {
  $('lang').addEventListener('click', () => { lang = lang === 'zh-CN' ? 'en' : 'zh-CN'; localStorage.setItem('jianmen-lang', lang); route(); });
  $('logout').addEventListener('click', async () => { try { await api('POST', '/api/logout'); } catch (_) { /* already gone */ } me = null; location.hash = '#/login'; route(); });
  route();
});
