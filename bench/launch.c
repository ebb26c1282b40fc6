/* launch NAME=VALUE... -- PATH ARG...: execs PATH with exactly the given
 * environment. hyperfine -N runs each variant without a shell and cannot set
 * a per-command environment, so every variant (the bare command included)
 * goes through this one static, libc-free exec: the same fixed cost for all,
 * and no shell start-up in the figures. */
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

__attribute__((used, noreturn)) void launch_main(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char *envp[512];
    long ne = 0, i = 1;
    for (; i < argc && ne < 511; i++) {
        char *a = argv[i];
        if (a[0] == '-' && a[1] == '-' && a[2] == 0) {
            i++;
            break;
        }
        envp[ne++] = a;
    }
    envp[ne] = 0;
    if (i < argc)
        sys3(59 /* execve */, (long)argv[i], (long)(argv + i), (long)envp);
    static const char msg[] = "launch: execve failed\n";
    sys3(1 /* write */, 2, (long)msg, sizeof msg - 1);
    for (;;)
        sys3(231 /* exit_group */, 127, 0, 0);
}

__asm__(".globl _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call launch_main\n");
