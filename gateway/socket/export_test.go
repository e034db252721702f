package socket

// Reading is closed once Run reads notifications: a notification written
// after it is delivered.
func (s *Server) Reading() <-chan struct{} { return s.reading }

// Held is how many session ids the server holds, the count its caps check.
func (s *Server) Held() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.conns)
}
