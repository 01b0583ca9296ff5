# cmake -DREGISTRYCTL=<binary> -DOUTPUT_DIR=<completions dir> -P update.cmake
foreach(pair "bash;registryctl.bash" "zsh;_registryctl" "fish;registryctl.fish")
  list(GET pair 0 shell)
  list(GET pair 1 file)
  execute_process(COMMAND ${REGISTRYCTL} completion ${shell}
                  OUTPUT_FILE ${OUTPUT_DIR}/${file}
                  RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "registryctl completion ${shell} failed: ${result}")
  endif()
endforeach()
