package casemu

// The emulator's default key. It is not a secret: it opens nothing but the
// emulator, and the README, 'make demo', the bench and the tests use it.
const (
	DemoKeyID  = "LTAI5tEmuLatorKey0000000"
	DemoSecret = "emulator-secret-not-a-real-key"
)
