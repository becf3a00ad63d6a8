/* no_descriptor: a shared object that is not a Plexus module */
int no_descriptor_answer(void);
int no_descriptor_answer(void) { return 42; }
