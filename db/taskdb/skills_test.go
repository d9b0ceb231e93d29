package taskdb_test

import (
	"context"
	"errors"
	"testing"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/db/taskdb"
	"github.com/moim/moim/domain"
)

func TestSkillsCatalogue(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		c, err := (taskdb.Skills{}).Catalogue(ctx, bdb)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Categories) != 12 || len(c.Abilities) != 4 {
			t.Fatalf("seeded %d categories, %d abilities; want 12 and 4", len(c.Categories), len(c.Abilities))
		}
		cats, _ := dbtest.CatalogueIDs(t, bdb)
		research := cats["자료조사"]
		for _, x := range c.Categories {
			if x.Name == "논문검색" && x.BigID != research {
				t.Errorf("논문검색 is in %d, want 자료조사 (%d)", x.BigID, research)
			}
		}

		big, err := (taskdb.Skills{}).AddCategory(ctx, bdb, 0, "개발", dbtest.MemberEpoch)
		if err != nil || !big.Big() {
			t.Fatalf("AddCategory big = %+v, %v", big, err)
		}
		small, err := (taskdb.Skills{}).AddCategory(ctx, bdb, big.ID, "백엔드", dbtest.MemberEpoch)
		if err != nil || small.BigID != big.ID {
			t.Fatalf("AddCategory small = %+v, %v", small, err)
		}
		// The same name may live in two big categories, not twice in one.
		if _, err := (taskdb.Skills{}).AddCategory(ctx, bdb, research, "백엔드", dbtest.MemberEpoch); err != nil {
			t.Errorf("same name in another big category: %v", err)
		}
		if _, err := (taskdb.Skills{}).AddCategory(ctx, bdb, big.ID, "백엔드", dbtest.MemberEpoch); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Errorf("duplicate small category: %v, want conflict", err)
		}
		if _, err := (taskdb.Skills{}).AddCategory(ctx, bdb, 0, "개발", dbtest.MemberEpoch); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Errorf("duplicate big category: %v, want conflict", err)
		}
		// A small category cannot hold another.
		if _, err := (taskdb.Skills{}).AddCategory(ctx, bdb, small.ID, "x", dbtest.MemberEpoch); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("category under a small one: %v, want invalid", err)
		}
		if _, err := (taskdb.Skills{}).AddAbility(ctx, bdb, "Go", dbtest.MemberEpoch); err != nil {
			t.Fatal(err)
		}
		if _, err := (taskdb.Skills{}).AddAbility(ctx, bdb, "Go", dbtest.MemberEpoch); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Errorf("duplicate ability: %v, want conflict", err)
		}
	})
}

func TestMemberSkills(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		m := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("helper@example.com", "helper"))
		cats, abs := dbtest.CatalogueIDs(t, bdb)
		work := []int64{cats["초벌 번역"], cats["논문검색"]}
		if err := (taskdb.Skills{}).SetMemberSkills(ctx, bdb, m.ID, work, []int64{abs["영어"]}); err != nil {
			t.Fatal(err)
		}
		got, err := (taskdb.Skills{}).MemberSkills(ctx, bdb, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.PossibleWork) != 2 || got.PossibleWork[0].Name != "논문검색" || len(got.Abilities) != 1 || got.Abilities[0].Name != "영어" {
			t.Fatalf("skills = %+v", got)
		}

		// Unknown ids, or a big category as possible work, change nothing.
		for _, c := range []struct {
			work, abilities []int64
			field           string
		}{
			{[]int64{999}, nil, "possible_work"},
			{[]int64{cats["통번역"]}, nil, "possible_work"},
			{nil, []int64{abs["중국어"], 999}, "abilities"},
		} {
			err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
				return (taskdb.Skills{}).SetMemberSkills(ctx, tx, m.ID, c.work, c.abilities)
			})
			var de *domain.Error
			if !asDomainError(err, &de) || de.Code != domain.EINVALID || de.Field != c.field {
				t.Errorf("SetMemberSkills(%v, %v) = %v, want invalid %s", c.work, c.abilities, err, c.field)
			}
		}
		// Only the list given is replaced; an empty one clears.
		if err := (taskdb.Skills{}).SetMemberSkills(ctx, bdb, m.ID, nil, []int64{}); err != nil {
			t.Fatal(err)
		}
		got, err = (taskdb.Skills{}).MemberSkills(ctx, bdb, m.ID)
		if err != nil || len(got.PossibleWork) != 2 || len(got.Abilities) != 0 {
			t.Fatalf("after clearing abilities: %+v, %v", got, err)
		}
		if _, err := (taskdb.Skills{}).MemberSkills(ctx, bdb, "nobody"); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("unknown member: %v", err)
		}
	})
}

// asDomainError is errors.As for a *domain.Error.
func asDomainError(err error, de **domain.Error) bool { return errors.As(err, de) }
