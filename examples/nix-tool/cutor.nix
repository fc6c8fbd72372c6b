# A self-contained environment: no nixpkgs needed. The derivation builds a small
# `figlet-lite` tool with the build sandbox's /bin/sh; Cutor puts its bin/ on PATH.
let
  tool = derivation {
    name = "figlet-lite";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ''
      mkdir -p $out/bin
      cat > $out/bin/figlet-lite <<'SCRIPT'
      #!/bin/sh
      line=$(printf '%s' "$*" | sed 's/./=/g')
      printf '%s\n| %s |\n%s\n' "==$line==" "$*" "==$line=="
      SCRIPT
      chmod +x $out/bin/figlet-lite
    '' ];
  };
in [ tool ]
