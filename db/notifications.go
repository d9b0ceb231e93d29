package db

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/domain"
)

// notificationRow is a row of notifications, with the recipient's public id
// joined in.
type notificationRow struct {
	bun.BaseModel `bun:"table:notifications,alias:n"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,notnull"`
	MemberID  int64     `bun:"member_id,notnull"`
	Type      int16     `bun:"type,notnull"`
	Args      string    `bun:"args,notnull"`
	ReadAt    time.Time `bun:"read_at,nullzero"`
	CreatedAt time.Time `bun:"created_at,notnull"`
	// FannedOutAt is set once the notification's deliveries exist.
	FannedOutAt time.Time `bun:"fanned_out_at,nullzero"`

	MemberPublicID string `bun:"member_public_id,scanonly"`
}

func (r *notificationRow) toDomain() (domain.Notification, error) {
	n := domain.Notification{
		ID:        r.PublicID,
		MemberID:  r.MemberPublicID,
		Type:      domain.NotificationType(r.Type),
		CreatedAt: r.CreatedAt.UTC(),
	}
	if err := json.Unmarshal([]byte(r.Args), &n.Args); err != nil {
		return n, fmt.Errorf("decode args of notification %s: %w", r.PublicID, err)
	}
	if !r.ReadAt.IsZero() {
		at := r.ReadAt.UTC()
		n.ReadAt = &at
	}
	return n, nil
}

// Notifications is the store of in-app notifications.
type Notifications struct{}

// memberKey returns the internal id of a live member. Errors: ENOTFOUND.
func memberKey(ctx context.Context, idb bun.IDB, publicID string) (int64, error) {
	var id int64
	err := idb.NewSelect().Model((*memberRow)(nil)).Column("id").
		Where("public_id = ?", publicID).Where("deleted_at IS NULL").Scan(ctx, &id)
	if err != nil {
		err = translate(err)
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return 0, errMemberNotFound()
		}
		return 0, err
	}
	return id, nil
}

// Create inserts n for its member and sets n.ID. Times are stored in UTC to
// the microsecond and written back so. Errors: ENOTFOUND when the member is
// unknown or deleted.
func (Notifications) Create(ctx context.Context, idb bun.IDB, n *domain.Notification) error {
	created, err := Notifications{}.CreateMany(ctx, idb, []domain.Notification{*n})
	if err != nil {
		return err
	}
	if len(created) == 0 {
		return fmt.Errorf("create notification for %s: %w", n.MemberID, errMemberNotFound())
	}
	*n = created[0]
	return nil
}

// newNotificationRow fills n's ID and stored times and returns its row,
// which names the member by public id.
func newNotificationRow(n *domain.Notification) (notificationRow, error) {
	args, err := json.Marshal(n.Args)
	if err != nil {
		return notificationRow{}, fmt.Errorf("encode notification args: %w", err)
	}
	n.ID = NewPublicID()
	n.CreatedAt = dbTime(n.CreatedAt)
	row := notificationRow{PublicID: n.ID, MemberPublicID: n.MemberID, Type: int16(n.Type), Args: string(args), CreatedAt: n.CreatedAt}
	if n.ReadAt != nil {
		// Stored like any other field, so what is returned is what
		// FindByID later reads.
		at := dbTime(*n.ReadAt)
		n.ReadAt, row.ReadAt = &at, at
	}
	return row, nil
}

// CreateMany inserts one notification per element of ns and returns those
// it stored, with ID and times set; members unknown or deleted are left
// out. Notifications that differ only in their member (what Notify
// writes) take one statement, with no separate member lookup.
func (Notifications) CreateMany(ctx context.Context, idb bun.IDB, ns []domain.Notification) ([]domain.Notification, error) {
	if len(ns) == 0 {
		return nil, nil
	}
	ns = slices.Clone(ns) // what is returned, not the caller's
	rows := make([]notificationRow, len(ns))
	for i := range ns {
		if !ns[i].Type.Valid() {
			return nil, fmt.Errorf("create notifications: invalid type %d", int(ns[i].Type))
		}
		row, err := newNotificationRow(&ns[i])
		if err != nil {
			return nil, err
		}
		rows[i] = row
	}
	var out []domain.Notification
	for lo := 0; lo < len(rows); {
		hi := sameButMember(rows, lo)
		stored, err := insertNotifications(ctx, idb, rows[lo:hi], ns[lo:hi])
		if err != nil {
			return nil, fmt.Errorf("create notifications: %w", err)
		}
		out = append(out, stored...)
		lo = hi
	}
	return out, nil
}

// sameButMember returns the end of the run of rows from lo on that differ
// only in their member (and id), each member once.
func sameButMember(rows []notificationRow, lo int) int {
	first := rows[lo]
	seen := map[string]bool{}
	hi := lo
	for ; hi < len(rows); hi++ {
		r := rows[hi]
		if r.Type != first.Type || r.Args != first.Args || !r.CreatedAt.Equal(first.CreatedAt) ||
			!r.ReadAt.Equal(first.ReadAt) || seen[r.MemberPublicID] {
			break
		}
		seen[r.MemberPublicID] = true
	}
	return hi
}

// insertNotifications stores rows, which differ only in their member, in
// one INSERT … SELECT over the live members, in order, and returns the
// elements of ns it stored. The shared values are plain literals, which
// PostgreSQL types by their target columns (a CASE or UNION would make
// them text); only the public id, a string, varies by member.
func insertNotifications(ctx context.Context, idb bun.IDB, rows []notificationRow, ns []domain.Notification) ([]domain.Notification, error) {
	if idb.Dialect().Name() == dialect.MySQL {
		return insertNotificationValues(ctx, idb, rows, ns)
	}
	members := make([]string, len(rows))
	var id, order strings.Builder
	args := make([]any, 0, 4*len(rows)+8)
	id.WriteString("CASE m.public_id")
	for i, r := range rows {
		members[i] = r.MemberPublicID
		id.WriteString(" WHEN ? THEN ?")
		args = append(args, r.MemberPublicID, r.PublicID)
	}
	id.WriteString(" END")
	order.WriteString("CASE m.public_id")
	for i, r := range rows {
		order.WriteString(" WHEN ? THEN " + strconv.Itoa(i))
		args = append(args, r.MemberPublicID)
	}
	order.WriteString(" END")
	var readAt any // NULL unless set
	if !rows[0].ReadAt.IsZero() {
		readAt = rows[0].ReadAt
	}
	// The ORDER BY args come after the SELECT list's in the text, so they
	// are moved there.
	orderArgs := args[2*len(rows):]
	selectArgs := append([]any{}, args[:2*len(rows)]...)
	selectArgs = append(selectArgs, rows[0].Type, rows[0].Args, readAt, rows[0].CreatedAt, bun.In(members))
	selectArgs = append(selectArgs, orderArgs...)
	q := "INSERT INTO notifications (public_id, member_id, type, args, read_at, created_at) " +
		"SELECT " + id.String() + ", m.id, ?, ?, ?, ? FROM members AS m " +
		"WHERE m.public_id IN (?) AND m.deleted_at IS NULL ORDER BY " + order.String()
	res, err := idb.NewRaw(q, selectArgs...).Exec(ctx)
	if err != nil {
		return nil, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, err
	}
	if int(n) == len(rows) {
		return ns, nil
	}
	// Some members are gone: find out which notifications were stored.
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.PublicID
	}
	var stored []string
	err = idb.NewSelect().Model((*notificationRow)(nil)).Column("n.public_id").
		Where("n.public_id IN (?)", bun.In(ids)).Scan(ctx, &stored)
	if err != nil {
		return nil, translate(err)
	}
	have := make(map[string]bool, len(stored))
	for _, s := range stored {
		have[s] = true
	}
	var out []domain.Notification
	for i := range ns {
		if have[ns[i].ID] {
			out = append(out, ns[i])
		}
	}
	return out, nil
}

// insertNotificationValues is insertNotifications for MySQL and MariaDB:
// the live members' row ids first, then one multi-row INSERT … VALUES. An
// INSERT … SELECT does not know its row count in advance, so InnoDB
// (innodb_autoinc_lock_mode 1, the default before MySQL 8) holds the
// table's AUTO-INC lock to its end, and every notification insert of the
// server ran one at a time behind it.
func insertNotificationValues(ctx context.Context, idb bun.IDB, rows []notificationRow, ns []domain.Notification) ([]domain.Notification, error) {
	members := make([]string, len(rows))
	for i, r := range rows {
		members[i] = r.MemberPublicID
	}
	var live []struct {
		ID       int64  `bun:"id"`
		PublicID string `bun:"public_id"`
	}
	err := idb.NewSelect().Model((*memberRow)(nil)).Column("id", "public_id").
		Where("public_id IN (?)", bun.In(members)).Where("deleted_at IS NULL").Scan(ctx, &live)
	if err != nil {
		return nil, translate(err)
	}
	keys := make(map[string]int64, len(live))
	for _, m := range live {
		keys[m.PublicID] = m.ID
	}
	var insert []notificationRow
	var out []domain.Notification
	for i, r := range rows {
		if key, ok := keys[r.MemberPublicID]; ok {
			r.MemberID = key
			insert = append(insert, r)
			out = append(out, ns[i])
		}
	}
	if len(insert) == 0 {
		return nil, nil
	}
	if _, err := idb.NewInsert().Model(&insert).Returning("").Exec(ctx); err != nil {
		return nil, translate(err)
	}
	return out, nil
}

// selectNotifications starts a query over notifications with the member's
// public id joined in.
func selectNotifications(idb bun.IDB, rows *[]notificationRow) *bun.SelectQuery {
	return idb.NewSelect().Model(rows).
		ColumnExpr("n.*").
		ColumnExpr("m.public_id AS member_public_id").
		Join("JOIN members AS m ON m.id = n.member_id")
}

func toNotifications(rows []notificationRow) ([]domain.Notification, error) {
	out := make([]domain.Notification, 0, len(rows))
	for i := range rows {
		n, err := rows[i].toDomain()
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// FindByID returns the notification with public id id, whoever it is for.
// Errors: ENOTFOUND.
func (Notifications) FindByID(ctx context.Context, idb bun.IDB, id string) (*domain.Notification, error) {
	var rows []notificationRow
	if err := selectNotifications(idb, &rows).Where("n.public_id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find notification %s: %w", id, translate(err))
	}
	if len(rows) == 0 {
		return nil, &domain.Error{Code: domain.ENOTFOUND, Message: "Notification not found."}
	}
	n, err := rows[0].toDomain()
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// checkLimit rejects a page size below 1: bun leaves LIMIT 0 out (every
// row), a negative LIMIT means "no limit" to SQLite and is an error to the
// servers, and List would cut its look-ahead row at index -1.
func checkLimit(limit int) error {
	if limit < 1 {
		return domain.FieldErrorf(domain.EINVALID, "limit", "Limit must be at least 1.")
	}
	return nil
}

// NotificationPage is one page of a member's list, newest first.
type NotificationPage struct {
	Notifications []domain.Notification
	// Next is the cursor of the following (older) page; "" on the last.
	Next string
}

// List returns a page of at most limit of the member's notifications,
// newest first, starting after cursor ("" = the newest). Errors: EINVALID
// (field "cursor") for a cursor this store did not hand out, EINVALID
// (field "limit") for a limit below 1.
func (Notifications) List(ctx context.Context, idb bun.IDB, memberID, cursor string, limit int) (NotificationPage, error) {
	if err := checkLimit(limit); err != nil {
		return NotificationPage{}, err
	}
	// The member's row id first: filtered by it, the page is a backward
	// walk of (member_id, id) whatever the planner's statistics say. By
	// public id through the join, a planner without statistics walked the
	// whole table backwards for a member with few notifications.
	key, err := memberKey(ctx, idb, memberID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return NotificationPage{Notifications: []domain.Notification{}}, nil
	}
	if err != nil {
		return NotificationPage{}, fmt.Errorf("list notifications: %w", err)
	}
	// The cursor is the public id of the last notification of the previous
	// page: opaque, and it tells nothing about how many rows there are.
	var before int64
	if cursor != "" {
		err := idb.NewSelect().Model((*notificationRow)(nil)).Column("n.id").
			Where("n.public_id = ?", cursor).
			Where("n.member_id = ?", key).
			Scan(ctx, &before)
		if domain.ErrorCode(translate(err)) == domain.ENOTFOUND {
			return NotificationPage{}, domain.FieldErrorf(domain.EINVALID, "cursor", "Invalid cursor.")
		}
		if err != nil {
			return NotificationPage{}, fmt.Errorf("list notifications: %w", translate(err))
		}
	}
	var rows []notificationRow
	q := selectNotifications(idb, &rows).
		Where("n.member_id = ?", key).
		OrderExpr("n.id DESC").
		Limit(int64(limit) + 1) // one more tells whether there is a next page
	if before > 0 {
		q = q.Where("n.id < ?", before)
	}
	if err := q.Scan(ctx); err != nil {
		return NotificationPage{}, fmt.Errorf("list notifications: %w", translate(err))
	}
	var page NotificationPage
	if len(rows) > limit {
		rows = rows[:limit]
		page.Next = rows[len(rows)-1].PublicID
	}
	list, err := toNotifications(rows)
	page.Notifications = list
	return page, err
}

// After returns up to limit of the member's notifications newer than the
// one with public id after, oldest first: what an event stream missed. An
// id that is not the member's yields nothing. Errors: EINVALID (field
// "limit") for a limit below 1.
func (Notifications) After(ctx context.Context, idb bun.IDB, memberID, after string, limit int) ([]domain.Notification, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	var rows []notificationRow
	err := selectNotifications(idb, &rows).
		Where("m.public_id = ?", memberID).
		Where("n.id > (SELECT a.id FROM notifications AS a WHERE a.public_id = ? AND a.member_id = m.id)", after).
		OrderExpr("n.id ASC").
		Limit(int64(limit)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("notifications after %s: %w", after, translate(err))
	}
	return toNotifications(rows)
}

// UnreadCount counts the member's unread notifications.
func (Notifications) UnreadCount(ctx context.Context, idb bun.IDB, memberID string) (int, error) {
	n, err := idb.NewSelect().Model((*notificationRow)(nil)).
		Join("JOIN members AS m ON m.id = n.member_id").
		Where("m.public_id = ?", memberID).
		Where("n.read_at IS NULL").
		Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count unread notifications: %w", translate(err))
	}
	return int(n), nil
}

// MarkRead marks the member's notifications with these public ids read and
// returns how many changed. Ids that are not the member's, unknown or
// already read are passed over: the answer never tells whether someone
// else's notification exists. ids nil marks every unread one.
func (Notifications) MarkRead(ctx context.Context, idb bun.IDB, memberID string, ids []string, now time.Time) (int, error) {
	member, err := memberKey(ctx, idb, memberID)
	if err != nil {
		return 0, fmt.Errorf("mark notifications read: %w", err)
	}
	q := idb.NewUpdate().Model((*notificationRow)(nil)).
		Set("read_at = ?", dbTime(now)).
		Where("member_id = ?", member).
		Where("read_at IS NULL")
	if ids != nil {
		if len(ids) == 0 {
			return 0, nil
		}
		q = q.Where("public_id IN (?)", bun.In(ids))
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("mark notifications read: %w", translate(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// MarkFannedOut records, inside the fan-out's transaction, that the
// notification with public id id gets its deliveries now. It reports false
// when it was fanned out before (or does not exist): the conditional
// UPDATE makes concurrent fan-outs of one notification wait for each other
// and lets exactly one of them create the deliveries.
func (Notifications) MarkFannedOut(ctx context.Context, idb bun.IDB, id string, now time.Time) (bool, error) {
	res, err := idb.NewUpdate().Model((*notificationRow)(nil)).
		Set("fanned_out_at = ?", dbTime(now)).
		Where("public_id = ?", id).
		Where("fanned_out_at IS NULL").
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("mark notification %s fanned out: %w", id, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mark notification %s fanned out: %w", id, err)
	}
	return n == 1, nil
}

// Unfanned is a notification whose fan-out has not happened: what the
// notification sweep redoes.
type Unfanned struct {
	Key       int64 // row id, the sweep's cursor
	ID        string
	Type      domain.NotificationType
	Args      string // as stored: notifications of one producer call share it
	CreatedAt time.Time
}

// Unfanned returns up to limit notifications created at or before before
// that are not fanned out, with row id above after, in id order. It reads
// notifications_fanned_out_at_id_idx: only notifications still in flight
// have no fanned_out_at.
func (Notifications) Unfanned(ctx context.Context, idb bun.IDB, before time.Time, after int64, limit int) ([]Unfanned, error) {
	var rows []notificationRow
	err := idb.NewSelect().Model(&rows).
		Column("n.id", "n.public_id", "n.type", "n.args", "n.created_at").
		Where("n.fanned_out_at IS NULL").
		Where("n.id > ?", after).
		Where("n.created_at <= ?", dbTime(before)).
		OrderExpr("n.id").
		Limit(int64(limit)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("find notifications not fanned out: %w", translate(err))
	}
	out := make([]Unfanned, len(rows))
	for i, r := range rows {
		out[i] = Unfanned{Key: r.ID, ID: r.PublicID, Type: domain.NotificationType(r.Type), Args: r.Args, CreatedAt: r.CreatedAt.UTC()}
	}
	return out, nil
}
