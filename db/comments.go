package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/domain"
)

// commentRow is a row of comments with the room's, the author's and the
// parent's public ids and the author's nickname joined in.
type commentRow struct {
	bun.BaseModel `bun:"table:comments,alias:c"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,notnull"`
	RoomID    int64     `bun:"room_id,notnull"`
	AuthorID  int64     `bun:"author_id,notnull"`
	ParentID  int64     `bun:"parent_id,nullzero"`
	Body      string    `bun:"body,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
	DeletedAt time.Time `bun:"deleted_at,nullzero"`

	RoomPublicID   string `bun:"room_public_id,scanonly"`
	AuthorPublicID string `bun:"author_public_id,scanonly"`
	AuthorNickname string `bun:"author_nickname,scanonly"`
	ParentPublicID string `bun:"parent_public_id,scanonly"`
}

func (r *commentRow) toDomain() domain.Comment {
	return domain.Comment{
		ID: r.PublicID, RoomID: r.RoomPublicID, AuthorID: r.AuthorPublicID, Author: r.AuthorNickname,
		ParentID: r.ParentPublicID, Body: r.Body,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), DeletedAt: utcOrZero(r.DeletedAt),
	}
}

func selectComments(idb bun.IDB, dest any) *bun.SelectQuery {
	return idb.NewSelect().Model(dest).
		ColumnExpr("c.*").
		ColumnExpr("r.public_id AS room_public_id").
		ColumnExpr("a.public_id AS author_public_id").
		ColumnExpr("a.nickname AS author_nickname").
		ColumnExpr("p.public_id AS parent_public_id").
		Join("JOIN rooms AS r ON r.id = c.room_id").
		Join("JOIN members AS a ON a.id = c.author_id").
		Join("LEFT JOIN comments AS p ON p.id = c.parent_id")
}

func errCommentNotFound() error {
	return &domain.Error{Code: domain.ENOTFOUND, Message: "Comment not found."}
}

// Comments is the store of room comments and their replies.
type Comments struct{}

// Create stores c (AuthorID, Body normalised, ParentID "" or a top-level
// comment of the same room, CreatedAt) on room r, and sets c.ID, c.RoomID,
// c.Author and times. It returns the parent comment for a reply (nil
// otherwise), whose author the caller notifies. Errors: ENOTFOUND (field
// "parent_id") for a parent that is not a live comment of the room,
// EINVALID (field "parent_id") for a reply to a reply, ENOTFOUND for an
// unknown or deleted author.
func (Comments) Create(ctx context.Context, idb bun.IDB, r *domain.Room, c *domain.Comment) (*domain.Comment, error) {
	var author memberRow
	err := idb.NewSelect().Model(&author).Column("id", "nickname").
		Where("public_id = ?", c.AuthorID).Where("deleted_at IS NULL").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("create comment by %s: %w", c.AuthorID, translate(err))
	}
	row := commentRow{PublicID: NewPublicID(), RoomID: r.Key, AuthorID: author.ID, Body: c.Body,
		CreatedAt: dbTime(c.CreatedAt), UpdatedAt: dbTime(c.CreatedAt)}
	var parent *domain.Comment
	if c.ParentID != "" {
		var ps []commentRow
		if err := selectComments(idb, &ps).Where("c.public_id = ?", c.ParentID).Scan(ctx); err != nil {
			return nil, fmt.Errorf("create comment: parent: %w", translate(err))
		}
		if len(ps) == 0 || ps[0].RoomID != r.Key || !ps[0].DeletedAt.IsZero() {
			return nil, domain.FieldErrorf(domain.ENOTFOUND, "parent_id", "The comment you reply to is not in this room.")
		}
		if ps[0].ParentID != 0 {
			return nil, domain.FieldErrorf(domain.EINVALID, "parent_id", "Replies go one level deep: reply to the comment, not to a reply.")
		}
		row.ParentID = ps[0].ID
		p := ps[0].toDomain()
		parent = &p
	}
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return nil, fmt.Errorf("create comment: %w", translate(err))
	}
	c.ID, c.RoomID, c.Author = row.PublicID, r.ID, author.Nickname
	c.CreatedAt, c.UpdatedAt, c.DeletedAt, c.Replies = row.CreatedAt, row.UpdatedAt, time.Time{}, nil
	return parent, nil
}

// FindByID returns the comment with public id id, deleted or not.
// Errors: ENOTFOUND.
func (Comments) FindByID(ctx context.Context, idb bun.IDB, id string) (*domain.Comment, error) {
	var rows []commentRow
	if err := selectComments(idb, &rows).Where("c.public_id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find comment %s: %w", id, translate(err))
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("find comment %s: %w", id, errCommentNotFound())
	}
	c := rows[0].toDomain()
	return &c, nil
}

// CommentPage is one page of a room's comments, oldest first, each with
// its replies.
type CommentPage struct {
	Comments []domain.Comment
	Next     string // cursor of the following page; "" on the last
}

// ListForRoom returns a page of room r's top-level comments, oldest first,
// each with all its replies, oldest first. A deleted comment stays in the
// list (body empty) while it has replies. Errors: EINVALID with field
// "cursor" for a cursor that is not a comment of the room, "limit" below 1.
func (Comments) ListForRoom(ctx context.Context, idb bun.IDB, r *domain.Room, cursor string, limit int) (CommentPage, error) {
	if err := checkLimit(limit); err != nil {
		return CommentPage{}, err
	}
	var rows []commentRow
	q := selectComments(idb, &rows).
		Where("c.room_id = ?", r.Key).
		Where("c.parent_id IS NULL").
		Where("(c.deleted_at IS NULL OR EXISTS (SELECT 1 FROM comments AS x WHERE x.parent_id = c.id AND x.deleted_at IS NULL))").
		OrderExpr("c.id ASC").
		Limit(int64(limit) + 1)
	if cursor != "" {
		var after []int64
		err := idb.NewSelect().Model((*commentRow)(nil)).Column("c.id").
			Where("c.public_id = ?", cursor).Where("c.room_id = ?", r.Key).Where("c.parent_id IS NULL").
			Scan(ctx, &after)
		if err != nil {
			return CommentPage{}, fmt.Errorf("list comments: cursor: %w", translate(err))
		}
		if len(after) == 0 {
			return CommentPage{}, domain.FieldErrorf(domain.EINVALID, "cursor", "Invalid cursor.")
		}
		q = q.Where("c.id > ?", after[0])
	}
	if err := q.Scan(ctx); err != nil {
		return CommentPage{}, fmt.Errorf("list comments: %w", translate(err))
	}
	var page CommentPage
	if len(rows) > limit {
		rows = rows[:limit]
		page.Next = rows[len(rows)-1].PublicID
	}
	page.Comments = make([]domain.Comment, len(rows))
	if len(rows) == 0 {
		return page, nil
	}
	index := make(map[int64]int, len(rows))
	keys := make([]int64, len(rows))
	for i := range rows {
		page.Comments[i] = rows[i].toDomain()
		index[rows[i].ID], keys[i] = i, rows[i].ID
	}
	var replies []commentRow
	err := selectComments(idb, &replies).
		Where("c.parent_id IN (?)", bun.In(keys)).
		Where("c.deleted_at IS NULL").
		OrderExpr("c.id ASC").
		Scan(ctx)
	if err != nil {
		return CommentPage{}, fmt.Errorf("list comments: replies: %w", translate(err))
	}
	for i := range replies {
		p := &page.Comments[index[replies[i].ParentID]]
		p.Replies = append(p.Replies, replies[i].toDomain())
	}
	return page, nil
}

// ownComment reads a live comment for a change by its author.
// Errors: ENOTFOUND (also when deleted), EFORBIDDEN for another's.
func ownComment(ctx context.Context, idb bun.IDB, id, authorID string) (*domain.Comment, error) {
	c, err := (Comments{}).FindByID(ctx, idb, id)
	if err != nil {
		return nil, err
	}
	if c.Deleted() {
		return nil, fmt.Errorf("comment %s: %w", id, errCommentNotFound())
	}
	if c.AuthorID != authorID {
		return nil, &domain.Error{Code: domain.EFORBIDDEN, Message: "You can only change your own comments."}
	}
	return c, nil
}

// Update replaces the body of the author's live comment id and returns it.
// Errors: ENOTFOUND, EFORBIDDEN.
func (Comments) Update(ctx context.Context, idb bun.IDB, id, authorID, body string, now time.Time) (*domain.Comment, error) {
	c, err := ownComment(ctx, idb, id, authorID)
	if err != nil {
		return nil, err
	}
	res, err := idb.NewUpdate().Model((*commentRow)(nil)).
		Set("body = ?", body).Set("updated_at = ?", dbTime(now)).
		Where("public_id = ?", id).Where("deleted_at IS NULL").
		Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("update comment %s: %w", id, translate(err))
	}
	// Deleted between the read and the update.
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return nil, fmt.Errorf("update comment %s: %v: %w", id, err, errCommentNotFound())
	}
	c.Body, c.UpdatedAt = body, dbTime(now)
	return c, nil
}

// Delete soft-deletes the author's live comment id, emptying its body.
// Errors: ENOTFOUND, EFORBIDDEN.
func (Comments) Delete(ctx context.Context, idb bun.IDB, id, authorID string, now time.Time) error {
	if _, err := ownComment(ctx, idb, id, authorID); err != nil {
		return err
	}
	_, err := idb.NewUpdate().Model((*commentRow)(nil)).
		Set("body = ''").Set("deleted_at = ?", dbTime(now)).Set("updated_at = ?", dbTime(now)).
		Where("public_id = ?", id).Where("deleted_at IS NULL").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete comment %s: %w", id, translate(err))
	}
	return nil
}
