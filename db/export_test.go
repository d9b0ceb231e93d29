package db

// Translate exposes translate to the external tests, which need dbtest and
// so cannot live in package db (dbtest imports db).
func Translate(err error) error { return translate(err) }
