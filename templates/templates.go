package templates

import (
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"path"
	"strings"
	texttemplate "text/template"
	"time"
)

// files are the texts. Only New reads them.
//
//go:embed text/*.tmpl html/*.html
var files embed.FS

// The shared files of each directory; every other file is one type's.
const (
	textBase   = "text/base.tmpl"
	htmlLayout = "html/layout.html"
)

// Channel is where a text goes.
type Channel string

// The channels a text can be rendered for.
const (
	InApp Channel = "inapp"
	Mail  Channel = "mail"
	SMS   Channel = "sms"
	Slack Channel = "slack"
)

// Channels lists every channel. The slice is the caller's to keep.
func Channels() []Channel { return []Channel{InApp, Mail, SMS, Slack} }

// Types lists the notification type names the package has texts for (the
// wire names). The slice is a fresh copy on each call, so a caller changing
// it cannot change what the package renders.
func Types() []string {
	return []string{
		"PARTICIPATION_ON_MY_ROOM",
		"PARTICIPATION_CANCELLED",
		"JOIN_ACCEPTED",
		"JOIN_REJECTED_FULL",
		"MATCH_CONFIRMED",
		"NO_MATCH_FOUND",
		"REPLY_ON_MY_COMMENT",
		"COMMENT_ON_MY_ROOM",
		"ROOM_UPDATED",
		"ROOM_CANCELLED",
		"RUN_DDAY",
		"RUN_STARTS_SOON",
		"RUN_ENDED",
		"MISSION_STARTED",
		"MISSION_CLOSED",
		"TASK_MATCHING_STARTED",
		"TASK_INVITATION",
		"TASK_MATCHED",
		"TASK_DONE",
		"MISSION_CANCELLED",
		"MISSION_VERIFY_REMINDER",
		"TASK_SHORT_OF_HELPERS",
		"EMAIL_VERIFICATION",
		"PASSWORD_RESET",
		"PHONE_VERIFICATION",
	}
}

// textBlocks are the blocks every type's text file must define. mail.text,
// the plain-text mail, is the shared frame in base.tmpl around mail.body.
func textBlocks() []string {
	return []string{
		"inapp.title", "inapp.body",
		"mail.subject", "mail.body", "link.label",
		"sms.subject", "sms",
		"slack",
	}
}

// htmlContent is the block every type's HTML file must define; layout.html
// wraps it.
const htmlContent = "content"

// Errors Render returns, wrapped; both mean the caller asked for something
// no deploy of this binary can render, so retrying is pointless.
var (
	ErrUnknownType    = errors.New("unknown notification type")
	ErrUnknownChannel = errors.New("unknown channel")
)

// Data is everything a text may show. Every field is optional: texts leave
// out what is empty, and surrounding whitespace is ignored.
type Data struct {
	Nickname string    // the recipient
	Actor    string    // who caused it, e.g. the member who joined or commented
	Title    string    // the room, mission or helper-request title
	Category string    // MEAL, STUDY, RUN (shown as 식사, 스터디, 러닝), a mission type, or free text
	Place    string    // SEOCHO, GAEPO, OUT_OF_CLUSTER (shown as 서초, 개포, 클러스터 외부) or free text
	StartsAt time.Time // zero = none; shown in the Renderer's location as "1월 2일 (금) 오후 3:04"
	Members  []string  // nicknames of a match, shown joined with ", "
	Link     string    // absolute URL into the client app
	Amount   int64     // won, e.g. a mission refund, shown as "12,345원"
	Excerpt  string    // a comment excerpt, or a helper request's details
	Reason   string    // free text, e.g. why something was cancelled
	RateBP   *int      // a mission member's rate in basis points; nil = none; shown as "85%" or "85.71%"
	Code     string    // a one-time verification code (account texts)
	Expiry   string    // how long Code or the link works, e.g. "10분"
}

// Message is one rendered text. InApp fills Subject (the title) and Text;
// Mail fills Subject, HTML and Text; SMS fills Subject (the LMS title) and
// Text; Slack fills Text. Subjects are one line; every part is trimmed.
type Message struct {
	Subject string
	HTML    string
	Text    string
}

// Renderer renders the embedded texts. It is immutable after New and safe
// for concurrent use.
type Renderer struct {
	byType map[string]typeTemplates
}

// typeTemplates are one type's parsed texts. Each type has its own sets
// because every type defines the same block names.
type typeTemplates struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// mailView is what the HTML mail layout sees: the data plus the parts
// already rendered as text, so the layout does not repeat them.
type mailView struct {
	Data
	Subject   string // for <title>
	Heading   string // the in-app title, as the mail's headline
	LinkLabel string // the button text
}

// New parses every embedded template once. It fails if a type lacks a file
// or a block, if a file belongs to no type, or if any text fails to render
// on a full sample and on an empty Data, so a broken text fails the process
// at start instead of the first send. loc is where times are shown (moim
// passes Asia/Seoul).
func New(loc *time.Location) (*Renderer, error) { return newFromFS(files, loc) }

// newFromFS is New over any file tree, so tests can prove that a broken
// tree is refused.
func newFromFS(fsys fs.FS, loc *time.Location) (*Renderer, error) {
	if loc == nil {
		return nil, errors.New("templates: nil location")
	}
	funcs := funcMap(loc)
	r := &Renderer{byType: make(map[string]typeTemplates)}
	for _, typ := range Types() {
		name := strings.ToLower(typ)
		tt, err := texttemplate.New(name).Funcs(funcs).ParseFS(fsys, textBase, "text/"+name+".tmpl")
		if err != nil {
			return nil, fmt.Errorf("templates: parse %s text: %w", typ, err)
		}
		for _, b := range textBlocks() {
			if tt.Lookup(b) == nil {
				return nil, fmt.Errorf("templates: %s: text/%s.tmpl defines no %q", typ, name, b)
			}
		}
		ht, err := htmltemplate.New(name).Funcs(htmltemplate.FuncMap(funcs)).ParseFS(fsys, htmlLayout, "html/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("templates: parse %s html: %w", typ, err)
		}
		if ht.Lookup(htmlContent) == nil {
			return nil, fmt.Errorf("templates: %s: html/%s.html defines no %q", typ, name, htmlContent)
		}
		r.byType[typ] = typeTemplates{text: tt, html: ht}
	}
	if err := checkStrays(fsys, r.byType); err != nil {
		return nil, err
	}
	for _, d := range []Data{sampleData(loc), {}} {
		for _, typ := range Types() {
			for _, ch := range Channels() {
				if _, err := r.Render(ch, typ, d); err != nil {
					return nil, fmt.Errorf("templates: sample render: %w", err)
				}
			}
		}
	}
	return r, nil
}

// checkStrays fails on an embedded file that belongs to no type: a
// misspelt file name would otherwise be silently ignored.
func checkStrays(fsys fs.FS, known map[string]typeTemplates) error {
	for _, dir := range []string{"text", "html"} {
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil {
			return fmt.Errorf("templates: read %s: %w", dir, err)
		}
		for _, e := range entries {
			p := path.Join(dir, e.Name())
			if p == textBase || p == htmlLayout {
				continue
			}
			typ := strings.ToUpper(strings.TrimSuffix(e.Name(), path.Ext(e.Name())))
			if _, ok := known[typ]; !ok {
				return fmt.Errorf("templates: %s belongs to no notification type", p)
			}
		}
	}
	return nil
}

// sampleRate is sampleData's rate: 85.71 %.
var sampleRate = 8571

// sampleData fills every field, so New executes every optional branch.
func sampleData(loc *time.Location) Data {
	return Data{
		Nickname: "러너",
		Actor:    "밥친구",
		Title:    "한강 5km",
		Category: "RUN",
		Place:    "OUT_OF_CLUSTER",
		StartsAt: time.Date(2026, 1, 2, 19, 0, 0, 0, loc),
		Members:  []string{"러너", "밥친구"},
		Link:     "https://moim.example/rooms/1",
		Amount:   12345,
		Excerpt:  "저도 갈게요!",
		Reason:   "비 예보",
		RateBP:   &sampleRate,
		Code:     "7K3QX9",
		Expiry:   "10분",
	}
}

// Render renders type typ for channel ch. An unknown channel or type is an
// error wrapping ErrUnknownChannel or ErrUnknownType.
func (r *Renderer) Render(ch Channel, typ string, d Data) (Message, error) {
	t, ok := r.byType[typ]
	if !ok {
		return Message{}, fmt.Errorf("render %q: %w", typ, ErrUnknownType)
	}
	d = normalize(d)
	x := executor{t: t.text, data: d}
	var m Message
	switch ch {
	case InApp:
		m.Subject = oneLine(x.run("inapp.title"))
		m.Text = tidy(x.run("inapp.body"))
	case Mail:
		m.Subject = oneLine(x.run("mail.subject"))
		m.Text = tidy(x.run("mail.text"))
		v := mailView{
			Data:      d,
			Subject:   m.Subject,
			Heading:   oneLine(x.run("inapp.title")),
			LinkLabel: oneLine(x.run("link.label")),
		}
		if x.err == nil {
			var b strings.Builder
			if err := t.html.ExecuteTemplate(&b, "layout", v); err != nil {
				x.err = err
			}
			m.HTML = tidy(b.String())
		}
	case SMS:
		// Emoji make an SMS send fail (SENS is EUC-KR based), and the
		// texts have none, so only member-supplied text can bring them.
		x.data = stripEmoji(d)
		m.Subject = oneLine(x.run("sms.subject"))
		m.Text = tidy(x.run("sms"))
	case Slack:
		m.Text = tidy(x.run("slack"))
	default:
		return Message{}, fmt.Errorf("render %s for %q: %w", typ, ch, ErrUnknownChannel)
	}
	if x.err != nil {
		return Message{}, fmt.Errorf("render %s for %s: %w", typ, ch, x.err)
	}
	return m, nil
}

// executor runs blocks of one type's text set and keeps the first error,
// so Render reads as a list of parts.
type executor struct {
	t    *texttemplate.Template
	data Data
	err  error
}

func (x *executor) run(name string) string {
	if x.err != nil {
		return ""
	}
	var b strings.Builder
	if err := x.t.ExecuteTemplate(&b, name, x.data); err != nil {
		x.err = err
		return ""
	}
	return b.String()
}

// normalize trims every field and drops blank member names, so a title of
// spaces counts as absent. It copies Members rather than changing the
// caller's slice.
func normalize(d Data) Data {
	d.Nickname = strings.TrimSpace(d.Nickname)
	d.Actor = strings.TrimSpace(d.Actor)
	d.Title = strings.TrimSpace(d.Title)
	d.Category = strings.TrimSpace(d.Category)
	d.Place = strings.TrimSpace(d.Place)
	d.Link = strings.TrimSpace(d.Link)
	d.Excerpt = strings.TrimSpace(d.Excerpt)
	d.Reason = strings.TrimSpace(d.Reason)
	d.Code = strings.TrimSpace(d.Code)
	d.Expiry = strings.TrimSpace(d.Expiry)
	var members []string
	for _, m := range d.Members {
		if m = strings.TrimSpace(m); m != "" {
			members = append(members, m)
		}
	}
	d.Members = members
	return d
}

// stripEmoji removes emoji from every field of d, then normalizes again so
// a field that was only emoji counts as absent.
func stripEmoji(d Data) Data {
	d.Nickname = withoutEmoji(d.Nickname)
	d.Actor = withoutEmoji(d.Actor)
	d.Title = withoutEmoji(d.Title)
	d.Category = withoutEmoji(d.Category)
	d.Place = withoutEmoji(d.Place)
	d.Excerpt = withoutEmoji(d.Excerpt)
	d.Reason = withoutEmoji(d.Reason)
	members := make([]string, len(d.Members))
	for i, m := range d.Members {
		members[i] = withoutEmoji(m)
	}
	d.Members = members
	return normalize(d)
}

// oneLine collapses all whitespace, newlines included, to single spaces:
// subjects and titles must be one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// tidy trims trailing spaces from each line, collapses runs of blank lines
// into one and trims the whole, so blocks may leave empty lines where an
// optional field was absent.
func tidy(s string) string {
	lines := strings.Split(s, "\n")
	out := lines[:0]
	blank := true // drops leading blank lines
	for _, l := range lines {
		l = strings.TrimRight(l, " \t\r")
		if l == "" {
			if blank {
				continue
			}
			blank = true
		} else {
			blank = false
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}
