package apply

// MaxQPS is the highest --qps certalloc accepts: a hundred times the
// service's documented limit, and a bound on what the pacer holds.
const MaxQPS = 1000
