package missiondb

// VerifyInsertError exposes verifyInsertError to the external tests.
func VerifyInsertError(err error) error { return verifyInsertError(err) }
