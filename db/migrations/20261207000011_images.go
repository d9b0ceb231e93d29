package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Frozen row structs of images; see the foundation migration for why MySQL
// has its own.
//
// purpose and status are small numbers (domain.ImagePurpose and
// domain.ImageStatus); content_type is empty while UPLOADING; variants holds
// the names of the variants stored so far as a JSON list. The
// (status, updated_at) index serves the tick that deletes uploads never
// completed and retries images stuck in PROCESSING.

type images20261207 struct {
	bun.BaseModel `bun:"table:images"`

	ID            int64     `bun:"id,pk,autoincrement"`
	PublicID      string    `bun:"public_id,type:varchar(32),notnull,unique:images_public_id_key"`
	OwnerID       int64     `bun:"owner_id,notnull"`
	Purpose       int16     `bun:"purpose,type:smallint,notnull"`
	Status        int16     `bun:"status,type:smallint,notnull"`
	ContentType   string    `bun:"content_type,type:varchar(64),notnull,default:''"`
	Width         int32     `bun:"width,type:integer,notnull,default:0"`
	Height        int32     `bun:"height,type:integer,notnull,default:0"`
	Bytes         int64     `bun:"bytes,type:bigint,notnull,default:0"`
	Variants      string    `bun:"variants,type:text,notnull"`
	FailureReason string    `bun:"failure_reason,type:text,nullzero"`
	CreatedAt     time.Time `bun:"created_at,notnull"`
	UpdatedAt     time.Time `bun:"updated_at,notnull"`
}

type images20261207MySQL struct {
	bun.BaseModel `bun:"table:images"`

	ID            int64     `bun:"id,pk,autoincrement"`
	PublicID      string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:images_public_id_key"`
	OwnerID       int64     `bun:"owner_id,notnull"`
	Purpose       int16     `bun:"purpose,type:smallint,notnull"`
	Status        int16     `bun:"status,type:smallint,notnull"`
	ContentType   string    `bun:"content_type,type:varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,default:''"`
	Width         int32     `bun:"width,type:integer,notnull,default:0"`
	Height        int32     `bun:"height,type:integer,notnull,default:0"`
	Bytes         int64     `bun:"bytes,type:bigint,notnull,default:0"`
	Variants      string    `bun:"variants,type:text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	FailureReason string    `bun:"failure_reason,type:text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,nullzero"`
	CreatedAt     time.Time `bun:"created_at,type:datetime(6),notnull"`
	UpdatedAt     time.Time `bun:"updated_at,type:datetime(6),notnull"`
}

// imagesUp creates the images table.
func imagesUp(ctx context.Context, bdb *bun.DB) error {
	model := any((*images20261207)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		model = (*images20261207MySQL)(nil)
	}
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model(model).
			ForeignKey("(owner_id) REFERENCES members (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table images: %w", err)
		}
		for _, idx := range []struct {
			name string
			cols []string
		}{
			// A member's images.
			{"images_owner_id_idx", []string{"owner_id"}},
			// The cleanup tick: images in one status, oldest change first.
			{"images_status_updated_at_idx", []string{"status", "updated_at"}},
		} {
			if _, err := tx.NewCreateIndex().Model(model).Index(idx.name).Column(idx.cols...).Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", idx.name, err)
			}
		}
		return nil
	})
}

// imagesDown drops the images table.
func imagesDown(ctx context.Context, bdb *bun.DB) error {
	if _, err := bdb.NewDropTable().Table("images").IfExists().Exec(ctx); err != nil {
		return fmt.Errorf("drop table images: %w", err)
	}
	return nil
}
